"""The figures a run logs about how it trained: the loss along the line from its initial to
its trained weights (trainer.interpolation=true), the loss on a plane through its trained
weights (trainer.landscape=true), and the gradient flow (always), with
the values behind them checked against what the run logged and an independent evaluation."""

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

TINY = ["data=digits", "data.n_train=200", "trainer.epochs=2", "trainer.progress=false",
        "trainer.health_checks=false", "trainer.checkpoint_every=0",
        "tracking.log_model=false", "tracking.log_dataset=false"]
RESNET = ["model=resnet", "model.depth=8", "model.widths=[4,4,4]", "trainer.interpolation=true",
          "trainer.interpolation_points=5", "trainer.interpolation_images=150",
          "trainer.landscape=true", "trainer.landscape_points=5", "trainer.landscape_images=120",
          "trainer.landscape_seed=4", "trainer.noise_scale=true"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    folder = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # checkpoints/ and the artifact folder land here
        yield folder, f"sqlite:///{folder / 'mlflow.db'}"
        while mlflow.active_run() is not None:
            mlflow.end_run("KILLED")
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def resnet_run(store):
    from experiments.config import compose_config
    from experiments.runs.tracked import train_and_log

    folder, uri = store
    cfg = compose_config([*TINY, *RESNET, f"tracking.uri={uri}"])
    outcome = train_and_log(cfg)
    return cfg, outcome, folder, uri


def _artifact_json(client, run_id, path, folder):
    return json.loads(open(client.download_artifacts(run_id, path, str(folder))).read())


def _figure_and_values(resnet_run, figure: str, values: str):
    """The run's client and what it logged beside figures/<figure>.png (asserted there)."""
    import mlflow

    cfg, outcome, folder, uri = resnet_run
    client = mlflow.MlflowClient(uri)
    figures = {a.path for a in client.list_artifacts(outcome.run_id, "figures")}
    assert f"figures/{figure}.png" in figures
    return client, _artifact_json(client, outcome.run_id, values, folder)


def test_interpolated_losses_at_0_and_1_are_the_initial_and_trained_networks(resnet_run):

    from cnn.training import evaluate
    from experiments.runs.build import build_run
    from experiments.runs.interpolation import train_subset

    cfg, outcome, folder, _ = resnet_run
    client, values = _figure_and_values(resnet_run, "loss_interpolation",
                                        "loss_interpolation.json")
    alphas = values["alphas"]
    assert alphas[0] == -0.2 and alphas[-1] == 1.2 and len(alphas) == 7  # 5 + 0 and 1
    at = {name: dict(zip(alphas, values[name], strict=True))
          for name in ("train_loss", "test_loss")}

    # The trained end: the run's logged test loss, and its logged weights on the subset.
    logged = client.get_run(outcome.run_id).data.metrics
    assert at["test_loss"][1.0] == pytest.approx(logged["test_loss"], rel=1e-6)
    trained = build_run(cfg)
    trained.net.load(client.download_artifacts(outcome.run_id, "weights.npz", str(folder)))
    subset = train_subset(trained)
    assert len(subset.y) == 150 == values["train_images"]
    assert at["train_loss"][1.0] == pytest.approx(
        evaluate(trained.net, trained.loss_fn, subset).loss, rel=1e-6)
    # The initial end: a network built afresh from the config, untrained.
    initial = build_run(cfg)
    assert at["test_loss"][0.0] == pytest.approx(
        evaluate(initial.net, initial.loss_fn, initial.test_batches).loss, rel=1e-6)
    assert at["train_loss"][0.0] == pytest.approx(
        evaluate(initial.net, initial.loss_fn, subset).loss, rel=1e-6)
    assert at["train_loss"][0.0] != pytest.approx(at["train_loss"][1.0], rel=1e-3)


def test_the_landscape_is_logged_with_its_grid_and_its_centre_is_the_trained_loss(resnet_run):
    from cnn.diagnostics.landscape import grid_axis
    from cnn.training import evaluate
    from experiments.runs.build import build_run
    from experiments.runs.interpolation import train_subset

    cfg, outcome, folder, _ = resnet_run
    client, values = _figure_and_values(resnet_run, "loss_landscape", "loss_landscape.json")
    assert values["alphas"] == values["betas"] == grid_axis(5, 1.0).tolist()
    assert values["seed"] == 4 and values["train_images"] == 120
    assert values["seconds"] > 0 and values["cpu_seconds"] > 0
    loss = np.array(values["loss"], dtype=float)
    assert loss.shape == (5, 5) and np.isfinite(loss).all()
    assert np.array(values["acc"], dtype=float).shape == (5, 5)
    trained = build_run(cfg)
    trained.net.load(client.download_artifacts(outcome.run_id, "weights.npz", str(folder)))
    assert loss[2, 2] == pytest.approx(
        evaluate(trained.net, trained.loss_fn, train_subset(trained, images=120)).loss,
        rel=1e-6)
    assert len(np.unique(loss)) == 25


def test_the_noise_scale_is_logged_every_epoch_with_its_parts(resnet_run):
    import mlflow

    cfg, outcome, _, uri = resnet_run
    client = mlflow.MlflowClient(uri)

    def series(key):
        return [(m.step, m.value) for m in client.get_metric_history(outcome.run_id, key)]

    steps = -(-200 // cfg.trainer.batch_size)  # 200 images a epoch, the last batch smaller
    assert series("steps") == [(1, steps), (2, 2 * steps)]
    trace, grad_sq = dict(series("grad_noise_trace")), dict(series("grad_sq_norm"))
    assert sorted(trace) == [1, 2] and all(v > 0 for v in trace.values())
    for epoch, value in series("grad_noise_scale"):
        if grad_sq[epoch] > 0:
            assert value == pytest.approx(trace[epoch] / grad_sq[epoch], rel=1e-6)
        else:
            assert np.isnan(value)


def test_gradient_flow_has_a_row_per_weighted_layer_holding_the_logged_metrics(resnet_run):

    from cnn.layers import WeightedLayer
    from experiments.runs.build import build_run

    cfg, outcome, _, _ = resnet_run
    client, flow = _figure_and_values(resnet_run, "gradient_flow", "gradient_flow.json")
    weighted = [n for n, leaf in build_run(cfg).net.named_leaves()
                if isinstance(leaf, WeightedLayer)]
    # depth 8: the stem, 2 convolutions in each of 3 blocks, 2 projections, the classifier
    assert flow["layers"] == weighted and len(weighted) == 10
    assert "stage2.block1.shortcut.conv" in weighted
    assert flow["steps"] == [0, 1, 2]
    for stat in ("grad_norm", "update_ratio"):
        matrix = np.array(flow[stat], dtype=float)  # null -> nan
        assert matrix.shape == (10, 3)
        for i, layer in enumerate(weighted):
            logged = {m.step: m.value for m in client.get_metric_history(
                outcome.run_id, f"watch.{layer}.{stat}")}
            row = [logged.get(step, np.nan) for step in flow["steps"]]
            np.testing.assert_array_equal(matrix[i], row)
    # Before training there is a gradient but no update yet.
    ratios = np.array(flow["update_ratio"], dtype=float)
    assert np.isnan(ratios[:, 0]).all() and (ratios[:, 1:] > 0).all()


def test_a_diverged_run_still_logs_its_gradient_flow_and_no_interpolation_by_default(store):
    import mlflow

    from cnn.training import DivergenceError
    from experiments.config import compose_config
    from experiments.runs.tracked import train_and_log

    folder, uri = store
    cfg = compose_config([*TINY, "optim.lr=1e6", "tracking.run_name=diverged",
                          f"tracking.uri={uri}"])
    with pytest.raises(DivergenceError):
        train_and_log(cfg)
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id],
                                "attributes.run_name = 'diverged'")
    assert run.info.status == "FAILED"
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "gradient_flow.json" in paths and "loss_interpolation.json" not in paths
    flow = _artifact_json(client, run.info.run_id, "gradient_flow.json", folder)
    assert flow["layers"] == ["conv1", "conv2", "dense1"] and flow["steps"][0] == 0


@pytest.mark.parametrize("override, message", [
    ("trainer.interpolation_points=1", "trainer.interpolation_points must be >= 2, got 1"),
    ("trainer.interpolation_margin=-0.1", "trainer.interpolation_margin must be >= 0"),
    ("trainer.interpolation_images=0", "trainer.interpolation_images must be >= 1, got 0"),
    ("trainer.interpolation_bn=average", "trainer.interpolation_bn='average': choose blend"),
    ("trainer.landscape_points=1", "trainer.landscape_points must be >= 2, got 1"),
    ("trainer.landscape_span=0", "trainer.landscape_span must be > 0 and finite, got 0"),
    ("trainer.landscape_images=0", "trainer.landscape_images must be >= 1, got 0"),
    ("trainer.landscape_seed=-1", "trainer.landscape_seed must be >= 0, got -1"),
])
def test_bad_interpolation_settings_are_refused_naming_the_key(override, message):
    from experiments.config import ConfigError, compose_config, validate

    with pytest.raises(ConfigError, match=message):
        validate(compose_config([override]))
