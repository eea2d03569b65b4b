"""Sanity of the whole: initial loss, divergence, determinism, learning."""

import math

import numpy as np
import pytest

from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.schedules import Constant
from cnn.training import DivergenceError, evaluate, fit


def batches(x, y, size, rng=None):
    """A reshuffling iterable over (x, y), one epoch per iter()."""

    class Epochs:
        def __len__(self):
            return math.ceil(len(x) / size)

        def __iter__(self):
            order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
            for i in range(0, len(x), size):
                idx = order[i : i + size]
                yield x[idx], y[idx]

    return Epochs()


def synthetic(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 16, 16, 3)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("name", ["seed", "vgg"])
def test_fresh_network_loss_is_close_to_ln10_with_xavier(name):
    x, y = synthetic(256)
    net = build_model(name, input_shape=(16, 16, 3), init="xavier")
    loss = evaluate(net, SoftmaxCrossEntropy(), batches(x, y, 64)).loss
    assert abs(loss - np.log(10)) < 0.35, loss


def test_he_init_starts_above_ln10_through_the_head():
    """With He weights the logits start with a large variance (build_model's docstring)."""
    x, y = synthetic(256)
    net = build_model("vgg", input_shape=(16, 16, 3))
    assert evaluate(net, SoftmaxCrossEntropy(), batches(x, y, 64)).loss > np.log(10) + 0.5


def test_unit_normal_init_starts_far_from_ln10():
    x, y = synthetic(128)
    net = build_model("seed", input_shape=(16, 16, 3), init="unit_normal")
    loss = evaluate(net, SoftmaxCrossEntropy(), batches(x, y, 64)).loss
    assert loss > 10 * np.log(10)


def train_briefly(seed, epochs=2):
    x, y = synthetic(96)
    net = build_model("vgg", input_shape=(16, 16, 3), seed=seed)
    opt = SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fit(
        net,
        SoftmaxCrossEntropy(),
        opt,
        Constant(0.05),
        batches(x, y, 32, np.random.default_rng(seed)),
        epochs,
    )
    return net.state_dict()


@pytest.mark.slow  # trains vgg three times (18 steps): ~5 s of CPU
def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    a, b, c = train_briefly(0), train_briefly(0), train_briefly(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_absurd_learning_rate_raises_divergence_with_epoch_and_step():
    x, y = synthetic(64)
    net = build_model("seed", input_shape=(16, 16, 3), init="unit_normal")
    with pytest.raises(DivergenceError) as caught:
        fit(net, SoftmaxCrossEntropy(), SGD(1e6), Constant(1e6), batches(x, y, 16), epochs=5)
    assert caught.value.epoch >= 1 and caught.value.step >= 0
    assert "loss became" in caught.value.reason


def test_fit_reports_metrics_through_callbacks():
    x, y = synthetic(64)
    seen = []

    class Recorder:
        def on_epoch_end(self, epoch, metrics):
            seen.append((epoch, metrics))

    history = fit(
        build_model("seed", input_shape=(16, 16, 3)),
        SoftmaxCrossEntropy(),
        SGD(0.01),
        Constant(0.01),
        batches(x, y, 16),
        2,
        val_batches=batches(x, y, 32),
        callbacks=[Recorder()],
    )
    assert [e for e, _ in seen] == [1, 2] and history == [m for _, m in seen]
    assert {
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "epoch_time_s",
        "images_per_s",
    } <= set(history[0])


@pytest.mark.data
@pytest.mark.slow
def test_small_cnn_overfits_50_real_images(cifar10):
    """The classic sanity check: a working network memorises a tiny training set."""
    from cnn.data import BatchIterator, Normalizer

    x, y = cifar10.x_train[:50], cifar10.y_train[:50]
    iterator = BatchIterator(
        x, y, 25, transform=Normalizer().fit(x), shuffle=True, rng=np.random.default_rng(0)
    )
    net = build_model("seed", seed=0)
    opt = SGD(0.05, momentum=0.9)
    history = fit(net, SoftmaxCrossEntropy(), opt, Constant(0.05), iterator, epochs=60)
    acc = evaluate(
        net, SoftmaxCrossEntropy(), BatchIterator(x, y, 50, transform=iterator.transform)
    ).acc
    assert history[0]["train_acc"] < 0.5
    assert acc == 1.0, history[-1]
