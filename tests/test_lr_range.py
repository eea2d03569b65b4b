"""The learning-rate range test: its maths (cnn.lr_range), `python -m experiments.lr_find`
on the real subset, and a run trained at its suggestion (lr_find.apply=true)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnn.layers.activations import ReLU
from cnn.layers.dense import Dense
from cnn.losses import SoftmaxCrossEntropy
from cnn.lr_range import exponential_rates, lr_range_test, steepest_descent, suggest_lr
from cnn.network import Sequential
from cnn.optim import SGD


def test_rates_grow_geometrically_between_both_ends():
    rates = exponential_rates(1e-4, 1.0, 5)
    np.testing.assert_allclose(rates, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    with pytest.raises(ValueError, match="min_lr"):
        exponential_rates(1.0, 0.1, 5)


def test_rules_read_a_known_curve():
    lrs = np.geomspace(1e-6, 1.0, 121)  # 20 steps a decade
    x = np.log10(lrs)
    # Falls fastest at 1e-3, reaches its minimum at 1e-1, rises after it.
    loss = 2 - np.tanh(x + 3) + np.where(x > -1, (x + 1) ** 2, 0.0) + 0.01 * (x + 1) ** 2
    assert suggest_lr(lrs, loss, "min_div_10") == pytest.approx(1e-2, rel=0.13)
    assert lrs[steepest_descent(lrs, loss)] == pytest.approx(1e-3, rel=0.13)
    assert suggest_lr(lrs, loss, "steepest") == pytest.approx(1e-3, rel=0.13)
    with pytest.raises(ValueError, match="unknown suggestion rule 'valley'"):
        suggest_lr(lrs, loss, "valley")


def _blobs(rng: np.random.Generator, n: int = 64):
    """Two well separated Gaussian blobs in 4-D: (n, 4) float32, (n,) labels."""
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 4)).astype(np.float32) + 3.0 * y[:, None]
    return x, y


def test_stops_early_when_the_loss_diverges_and_suggests_below_it():
    rng = np.random.default_rng(0)
    net = Sequential([Dense(4, 16, rng=rng), ReLU(), Dense(16, 2, rng=rng)])
    x, y = _blobs(rng)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    result = lr_range_test(net, SoftmaxCrossEntropy(), SGD(0.0, momentum=0.9), batches,
                           min_lr=1e-4, max_lr=1e4, steps=160)
    assert result.stopped_early and len(result.lrs) < 160
    last = result.smoothed[-1]
    assert not np.isfinite(last) or last > 4 * result.best_loss
    np.testing.assert_allclose(result.lrs, exponential_rates(1e-4, 1e4, 160)[:len(result.lrs)])
    # Batches were cycled: more steps were taken than one pass holds.
    assert len(result.lrs) > len(batches)
    assert result.suggestion < result.lrs[-1]
    best = result.lrs[int(np.nanargmin(result.smoothed))]
    assert result.suggestion == pytest.approx(best / 10)


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.slow
def test_lr_find_on_the_seed_default_suggests_a_rate_that_trains(harness_cli):
    # The default sweep trains at 0.003 and 0.03 and fails at 0.3 (conf/sweep/convergence).
    done = harness_cli.run("experiments.lr_find", "lr_find.steps=100", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = float(re.search(r"suggested learning rate: ([0-9.e+-]+)", done.stdout)[1])
    assert 0.001 <= printed <= 0.1
    client = harness_cli.client()
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["lr_find"] == "true"
    assert run.data.metrics["lr_find_suggestion"] == pytest.approx(printed, rel=1e-3)
    assert run.data.metrics["lr_find_steps"] == 100
    files = {a.path for a in client.list_artifacts(run.info.run_id, "lr_find")}
    assert files == {"lr_find/lr_range_test.png", "lr_find/lr_range_test.csv"}
    rows = client.download_artifacts(run.info.run_id, "lr_find/lr_range_test.csv",
                                     str(harness_cli.folder))
    lines = open(rows).read().splitlines()
    assert lines[0] == "step,lr,loss,smoothed_loss" and len(lines) == 101


@pytest.mark.slow  # a range test, then an epoch on digits
@pytest.mark.mlflow
def test_apply_trains_at_the_suggestion_without_disturbing_the_run(tmp_path, monkeypatch):
    import mlflow

    from experiments.config import compose_config
    from experiments.runs.tracked import train_and_log

    monkeypatch.chdir(tmp_path)  # the store's artifacts go beside it
    tiny = ["data=digits", "trainer.epochs=1", "trainer.batch_size=64",
            "trainer.progress=false", "trainer.health_checks=false",
            "trainer.layer_stats=false", "trainer.checkpoint_every=0",
            "tracking.log_model=false", "tracking.log_dataset=false",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    found = train_and_log(compose_config([*tiny, "lr_find.apply=true", "lr_find.steps=40"]))
    client = mlflow.MlflowClient()
    run = client.get_run(found.run_id)
    assert run.info.status == "FINISHED"
    suggestion = run.data.metrics["lr_find_suggestion"]
    assert float(run.data.params["optim.lr"]) == pytest.approx(suggestion, rel=1e-6)
    assert float(run.data.tags["lr_find_suggestion"]) == pytest.approx(suggestion, rel=1e-3)
    assert "lr_find/lr_range_test.png" in {
        a.path for a in client.list_artifacts(found.run_id, "lr_find")}
    # The same run at that rate, given by hand, ends with the same weights' accuracy: the
    # range test trained a network of its own and drew from no stream of the run's.
    plain = train_and_log(compose_config([*tiny, f"optim.lr={run.data.params['optim.lr']}"]))
    same = ("train_loss", "train_acc", "lr")
    assert [{k: h[k] for k in same} for h in plain.history] == [
        {k: h[k] for k in same} for h in found.history]
    assert (plain.test_loss, plain.test_acc) == (found.test_loss, found.test_acc)


def test_bad_range_test_settings_are_named():
    from experiments.config import ConfigError, compose_config, validate

    with pytest.raises(ConfigError) as e:
        validate(compose_config(["lr_find.max_lr=1e-6", "lr_find.rule=valley",
                                 "lr_find.steps=1"]))
    message = str(e.value)
    assert "lr_find.max_lr=1e-06 must be finite and above lr_find.min_lr=1e-05" in message
    assert "lr_find.rule='valley': choose one of min_div_10, steepest" in message
    assert "lr_find.steps must be at least 2, got 1" in message


@pytest.mark.parametrize("model", [["model=seed"], ["model=vgg", "model.widths=[4,8]"],
                                   ["model=resnet", "model.depth=8", "model.widths=[4,8,8]"]])
def test_range_test_runs_on_every_family(model):
    from experiments.config import compose_config
    from experiments.runs.build import build_run
    from experiments.runs.lr_find import range_test

    overrides = ["data=digits", "trainer.batch_size=32", *model, "lr_find.steps=12",
                 "lr_find.min_lr=1e-3", "lr_find.max_lr=1.0"]
    cfg = compose_config(overrides)
    before = {k: v.copy() for k, v in build_run(cfg).net.params.items()}
    result = range_test(cfg)
    assert 1 <= len(result.lrs) <= 12 and np.isfinite(result.losses[0])
    assert 1e-4 <= result.suggestion <= 1.0
    # The configured network is built afresh each time: the test trained its own copy.
    after = build_run(cfg).net.params
    assert all(np.array_equal(before[k], after[k]) for k in before)
