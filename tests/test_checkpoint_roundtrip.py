"""cnn.checkpoint: 2 epochs + checkpoint + 2 more == 4 uninterrupted epochs, bit for bit;
damaged or unwritable checkpoints give clear errors and never replace a good one."""

import os
from pathlib import Path

import numpy as np
import pytest

from cnn import checkpoint
from cnn.averaging import WeightAverage
from cnn.layers import Dense, Dropout, Flatten, ReLU
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import SGD, Adam
from cnn.schedules import make_schedule
from cnn.training import fit

DETERMINISTIC = ("train_loss", "train_acc", "lr", "val_loss", "val_acc")


class Batches:
    """A reshuffling iterator drawing its order from a generator, like cnn.data's."""

    def __init__(self, x, y, size, rng):
        self.x, self.y, self.size, self.rng = x, y, size, rng

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __iter__(self):
        order = self.rng.permutation(len(self.x))
        for i in range(0, len(order), self.size):
            idx = order[i:i + self.size]
            yield self.x[idx], self.y[idx]


def synthetic_run(seed=0, optim="sgd"):
    """A small dropout network on random data, every random stream its own generator."""
    data = np.random.default_rng(99)
    x = data.standard_normal((120, 4, 4, 3)).astype(np.float32)
    y = data.integers(0, 5, 120)
    init = np.random.default_rng([seed, 0])
    net = Sequential([Flatten(), Dense(48, 32, rng=init), ReLU(),
                      Dropout(0.3, rng=np.random.default_rng([seed, 1])), Dense(32, 5, rng=init)])
    generators = {"shuffle": np.random.default_rng([seed, 2])}
    batches = Batches(x, y, 25, generators["shuffle"])
    opt = SGD(0.05, momentum=0.9) if optim == "sgd" else Adam(0.01)
    schedule = make_schedule("cosine", 0.05, len(batches) * 4)
    return net, opt, schedule, batches, generators


def series(history):
    return {k: [h[k] for h in history] for k in DETERMINISTIC if k in history[0]}


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_resumed_training_equals_uninterrupted(tmp_path, optim):
    net, opt, schedule, batches, gens = synthetic_run(optim=optim)
    full = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4)
    expected = net.state_dict()

    net, opt, schedule, batches, gens = synthetic_run(optim=optim)
    first = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 2)
    path = checkpoint.save(tmp_path / "last.npz",
                           checkpoint.capture(net, opt, gens, epoch=2, step=2 * len(batches)))
    # Train on past the checkpoint, as an interrupted run would, then start afresh.
    fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 3, start_epoch=3)

    net, opt, schedule, batches, gens = synthetic_run(optim=optim)
    state = checkpoint.load(path)
    assert (state.epoch, state.step) == (2, 2 * len(batches))
    checkpoint.restore(state, net, opt, gens, source=str(path))
    rest = fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4, start_epoch=3)

    assert series(first + rest) == series(full)
    got = net.state_dict()
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_a_resumed_weight_average_equals_the_uninterrupted_one(tmp_path):
    net, opt, schedule, batches, gens = synthetic_run()
    average = WeightAverage(net, 0.9)
    fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4, callbacks=[average])
    expected = average.state_dict()

    net, opt, schedule, batches, gens = synthetic_run()
    average = WeightAverage(net, 0.9)
    saver = checkpoint.Checkpointer(tmp_path / "last.npz", net, opt, gens, len(batches),
                                    average=average)
    fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 2, callbacks=[average, saver])

    net, opt, schedule, batches, gens = synthetic_run()
    average = WeightAverage(net, 0.9)
    state = checkpoint.load(tmp_path / "last.npz")
    checkpoint.restore(state, net, opt, gens, average=average)
    fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 4, start_epoch=3,
        callbacks=[average])
    got = average.state_dict()
    assert got.keys() == expected.keys() and int(got["updates"]) == 4 * len(batches)
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)

    # A checkpoint saved without an average restarts it from the restored weights.
    net, opt, _, _, gens = synthetic_run()
    average = WeightAverage(net, 0.9)
    state.average = {}
    checkpoint.restore(state, net, opt, gens, average=average)
    assert average.updates == 0
    np.testing.assert_array_equal(average.shadow["dense1.W"], state.net["dense1.W"])


def test_harness_run_resumes_bit_for_bit(tmp_path, cifar_root):
    """The same with a real configured run: augmentation, one-cycle, Nesterov."""
    from experiments.config import compose_config
    from experiments.runs.build import build_run

    overrides = ["model=seed", "data=cifar10_aug", "data.n_train=100", "trainer.epochs=4",
                 "trainer.batch_size=50", "schedule=onecycle", "optim.nesterov=true",
                 f"data.root={cifar_root}"]

    def build():
        return build_run(compose_config(overrides))

    def train(run, epochs, start=1):
        return fit(run.net, run.loss_fn, run.optimizer, run.schedule, run.train_batches,
                   epochs, start_epoch=start)

    run = build()
    full = train(run, 4)
    expected = run.net.state_dict()

    run = build()
    first = train(run, 2)
    path = checkpoint.save(tmp_path / "ck.npz", checkpoint.capture(
        run.net, run.optimizer, run.generators, 2, 2 * run.steps_per_epoch))
    run = build()
    checkpoint.restore(checkpoint.load(path), run.net, run.optimizer, run.generators)
    rest = train(run, 4, start=3)
    assert series(first + rest) == series(full)
    for k, v in run.net.state_dict().items():
        np.testing.assert_array_equal(v, expected[k], err_msg=k)


def saved(tmp_path) -> Path:
    net, opt, _, _, gens = synthetic_run()
    return checkpoint.save(tmp_path / "last.npz", checkpoint.capture(net, opt, gens, 1, 5))


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or truncated") as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)


def test_garbage_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(checkpoint.CheckpointError, match="junk.npz.*corrupt"):
        checkpoint.load(junk)
    weights = tmp_path / "weights.npz"
    np.savez(weights, w=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="not a training checkpoint"):
        checkpoint.load(weights)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")


def test_checkpoint_of_another_network_is_refused(tmp_path):
    state = checkpoint.load(saved(tmp_path))
    net = Sequential([Flatten(), Dense(48, 7)])
    with pytest.raises(checkpoint.CheckpointError, match="does not fit"):
        checkpoint.restore(state, net, SGD(0.1), {"shuffle": np.random.default_rng(0)})


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    net, opt, _, _, gens = synthetic_run()
    with pytest.raises(checkpoint.CheckpointError, match="No space left") as e:
        checkpoint.save(path, checkpoint.capture(net, opt, gens, 2, 10))
    assert str(path) in str(e.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]  # no temporary file left behind


# --- nothing is restored unless everything fits -----------------------------------------------


def _trained(seed):
    net, opt, schedule, batches, gens = synthetic_run(seed=seed)
    fit(net, SoftmaxCrossEntropy(), opt, schedule, batches, 1)
    return net, opt, gens


def _everything(net, opt, gens):
    """Weights, optimiser state and every generator's state (the dropout layer's too)."""
    return checkpoint.capture(net, opt, gens, 0, 0)


def _break_net(c):
    key = list(c.net)[-1]
    c.net[key] = np.full(c.net[key].shape, "0.5")


def _break_optim(c):
    key = next(k for k in c.optim if k != "steps")
    c.optim[key] = np.full(np.shape(c.optim[key]), "0.5")


def _wrong_generator_type(c):
    c.rng["layer:dropout1"] = {**c.rng["layer:dropout1"], "bit_generator": "MT19937"}


def _garbage_generator_state(c):
    c.rng["shuffle"] = {**c.rng["shuffle"], "state": {"state": "nonsense"}}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_break_net, "dense2.b"),
        (_break_optim, "optimiser state"),
        (lambda c: c.optim.pop("steps"), "steps"),
        (_wrong_generator_type, "layer:dropout1"),
        (_garbage_generator_state, "'shuffle'"),
    ],
    ids=["net-dtype", "optim-dtype", "optim-steps", "generator-type", "generator-state"],
)
def test_bad_checkpoint_restores_nothing(tmp_path, damage, expected):
    state = checkpoint.load(checkpoint.save(tmp_path / "ck.npz", _everything(*_trained(0))))
    damage(state)
    net, opt, gens = _trained(1)
    before = _everything(net, opt, gens)
    with pytest.raises(checkpoint.CheckpointError, match=expected) as e:
        checkpoint.restore(state, net, opt, gens, source="ck.npz")
    assert "ck.npz" in str(e.value)
    after = _everything(net, opt, gens)
    assert after.rng == before.rng
    for saved_part, now in ((before.net, after.net), (before.optim, after.optim)):
        assert saved_part.keys() == now.keys()
        for k in saved_part:
            np.testing.assert_array_equal(now[k], saved_part[k], err_msg=k)


@pytest.mark.parametrize(
    ("key", "value"),
    [("format", np.array("one")), ("epoch", np.arange(2)), ("step", np.array(1.5)),
     ("rng", np.frombuffer(b"[1, 2]", np.uint8))],
)
def test_malformed_header_names_the_file(tmp_path, key, value):
    path = saved(tmp_path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = value
    np.savez(path, **arrays)
    with pytest.raises(checkpoint.CheckpointError, match=key) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value)
