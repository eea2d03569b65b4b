"""A run with trainer.sharpness_every logs the sharpness before training and every N epochs
beside SGD's stability threshold, equal to a measurement made afresh, and draws it."""

import numpy as np
import pytest

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

TINY = ["data=digits", "data.n_train=150", "data.n_val=0", "trainer.epochs=4",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
        "trainer.layer_stats=false", "trainer.checkpoint_every=0", "tracking.log_model=false",
        "tracking.log_dataset=false", "optim=sgd", "optim.lr=0.05", "optim.momentum=0.9",
        "optim.weight_decay=0.001", "schedule=constant", "trainer.sharpness_every=2",
        "trainer.sharpness_images=100"]


@pytest.fixture(scope="module")
def sharp_run(tmp_path_factory):
    import mlflow

    from experiments.config import compose_config
    from experiments.runs.tracked import train_and_log

    folder = tmp_path_factory.mktemp("sharpness")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        cfg = compose_config([*TINY, f"tracking.uri={uri}"])
        outcome = train_and_log(cfg)
        yield cfg, outcome, mlflow.MlflowClient(uri)
        mlflow.set_tracking_uri(None)


def test_sharpness_is_logged_at_the_start_and_every_two_epochs(sharp_run):
    _, outcome, client = sharp_run
    steps = [m.step for m in client.get_metric_history(outcome.run_id, "sharpness")]
    assert steps == [0, 2, 4]
    thresholds = client.get_metric_history(outcome.run_id, "sharpness_threshold")
    # 2(1 + m)/lr less the weight decay, which adds to every curvature the steps see.
    assert [t.value for t in thresholds] == pytest.approx([2 * 1.9 / 0.05 - 0.001] * 3)
    values = [m.value for m in client.get_metric_history(outcome.run_id, "sharpness")]
    assert all(np.isfinite(values)) and min(values) > 0


def test_the_logged_start_is_the_untrained_networks_sharpness(sharp_run):
    # The same config builds the same untrained network: measured afresh on the first
    # sharpness_images training images, in training batches, it is what step 0 logged.
    from cnn.diagnostics.sharpness import sharpness
    from experiments.runs.build import build_run

    cfg, outcome, client = sharp_run
    run = build_run(cfg)
    x = run.transform(run.splits.x_train[:100])
    fresh = sharpness(run.net, run.loss_fn, x, run.splits.y_train[:100], batch_size=50,
                      seed=cfg.trainer.seed)
    logged = client.get_metric_history(outcome.run_id, "sharpness")[0]
    assert logged.step == 0 and logged.value == pytest.approx(fresh.value, rel=1e-9)


def test_the_runs_learning_curves_draw_it(sharp_run):
    _, outcome, client = sharp_run
    assert "figures/learning_curves.png" in {
        a.path for a in client.list_artifacts(outcome.run_id, "figures")}
