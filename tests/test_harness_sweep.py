"""End to end: a two-job sweep of a tiny config into a temporary SQLite store, then what
it logged, its pyfunc model, its report, and a rerun of one of its runs."""

import re
from types import SimpleNamespace

import numpy as np
import pytest

from experiments.runtime.blas import blas_library, cpu_model

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "data.n_train=200", "data.n_val=100", "trainer.epochs=2",
        "trainer.batch_size=50", "trainer.progress=false"]
EPOCH_METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s",
                 "images_per_s"]


@pytest.fixture(scope="module")
def sweep(module_harness_cli):
    cli = module_harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "init=he,xavier",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}")
    assert done.returncode == 0, done.stdout + done.stderr
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "sweep_dir" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId")
                       == parent.info.run_id), key=lambda r: r.info.start_time)
    return SimpleNamespace(cli=cli, client=client, parent=parent, children=children,
                           output=done.stdout + done.stderr)


def artifact_paths(client, run_id, path=None):
    """Every file under a run's artifacts, recursively."""
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_paths(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def test_parent_groups_the_children(sweep):
    assert sweep.parent.info.status == "FINISHED"
    assert [c.info.status for c in sweep.children] == ["FINISHED", "FINISHED"]
    assert [c.info.run_name for c in sweep.children] == [
        "seed-he-lr0.03-n200-s0", "seed-xavier-lr0.03-n200-s0"]
    assert sweep.parent.data.tags["jobs"] == "2 runs: 2 FINISHED"
    # A grid: each job numbered in the order it ran; no search report.
    assert sweep.parent.data.tags["sweeper"] == "grid"
    assert [c.data.tags["sweep_job"] for c in sweep.children] == ["0", "1"]
    report = artifact_paths(sweep.client, sweep.parent.info.run_id, "report")
    # One training-set size: accuracy per group instead of against size.
    assert {"report/learning_curves_loss.png", "report/learning_curves_acc.png",
            "report/accuracy_by_group.png", "report/summary.md",
            "report/summary.csv"} <= set(report)
    assert "report/accuracy_vs_size.png" not in report


def test_children_log_params_tags_and_datasets(sweep):
    for child, init in zip(sweep.children, ["he", "xavier"], strict=True):
        params, tags = child.data.params, child.data.tags
        assert params["init.name"] == init
        assert params["optim.lr"] == "0.03" and params["optim.name"] == "sgd"
        assert params["data.n_train"] == "200" and params["data.n_val"] == "100"
        assert params["trainer.epochs"] == "2" and params["model.name"] == "seed"
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", tags["git_commit"])
        assert tags["git_dirty"] in ("true", "false")
        assert f"init={init}" in tags["hydra_overrides"]
        assert re.fullmatch(r"[0-9a-f]{16}", tags["data_digest"])
        assert tags["sweep"] == "custom"  # a command-line sweep, not a preset
        # Layers took batch chunks on as many threads as BLAS had (experiments.runtime.threads).
        assert int(tags["chunk_threads"]) >= 1
        # What its rounding depends on: BLAS on one thread inside the layers, its kernel, the CPU.
        library, kernel = blas_library()
        assert (tags["blas"], tags["blas_kernel"], tags["blas_threads"], tags["cpu"]) == (
            library, kernel, "1", cpu_model())
        names = {d.dataset.name: d for d in child.inputs.dataset_inputs}
        assert set(names) == {"cifar10-train", "cifar10-val", "cifar10-test"}
    # Both jobs used one seed, so the same data.
    assert len({c.data.tags["data_digest"] for c in sweep.children}) == 1


def test_children_log_metrics_per_epoch(sweep):
    for child in sweep.children:
        run_id = child.info.run_id
        for key in EPOCH_METRICS:
            history = sweep.client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == [1, 2], key
        assert 0.0 <= child.data.metrics["test_acc"] <= 1.0
        assert child.data.metrics["test_loss"] > 0
        assert child.data.metrics["lr"] == pytest.approx(0.03)


def test_children_log_artifacts(sweep, tmp_path):
    child = sweep.children[0]
    paths = set(artifact_paths(sweep.client, child.info.run_id))
    assert {"config/config.yaml", "config/hydra/config.yaml", "config/hydra/hydra.yaml",
            "config/hydra/overrides.yaml", "weights.npz", "figures/learning_curves.png",
            "figures/confusion_matrix.png", "figures/first_layer_filters.png",
            "train.log", "health_report.txt", "model_summary.txt"} <= paths
    assert child.data.tags["health"] in ("pass", "warn", "fail")
    local = sweep.client.download_artifacts(child.info.run_id, "figures", str(tmp_path))
    for png in ("learning_curves.png", "confusion_matrix.png", "first_layer_filters.png"):
        with open(f"{local}/{png}", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    weights = sweep.client.download_artifacts(child.info.run_id, "weights.npz", str(tmp_path))
    from cnn.models import build_model

    net = build_model("seed")
    net.load(weights)  # every key and shape matches the architecture
    assert not np.allclose(net.params["conv1.W"], build_model("seed").params["conv1.W"])


def test_pyfunc_model_predicts_probabilities(sweep, cifar10, monkeypatch):
    import mlflow
    import pandas as pd

    child = sweep.children[0]
    # runs:/ URIs are resolved through the tracking store MLflow is pointed at.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.cli.tracking_uri)
    assert mlflow.get_tracking_uri() == sweep.cli.tracking_uri
    model = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model")
    assert child.data.tags["model_uri"].startswith("models:/")
    images = np.ascontiguousarray(cifar10.x_test)  # uint8 (N, 32, 32, 3)
    probs = model.predict(images)
    assert probs.shape == (len(images), 10) and probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # The same network as the one tested at the end of training: the same accuracy.
    accuracy = float((probs.argmax(axis=1) == cifar10.y_test).mean())
    assert accuracy == pytest.approx(child.data.metrics["test_acc"], abs=2 / len(images))
    # A DataFrame with one column of images gives the same answer.
    frame = pd.DataFrame({"image": list(images[:8])})
    np.testing.assert_allclose(model.predict(frame), probs[:8], rtol=1e-5)
    # The signature asks for uint8 images; floats are refused rather than misread.
    with pytest.raises(Exception, match="uint8"):
        model.predict(images[:2].astype(np.float32))


def test_report_cli(sweep):
    out = sweep.cli.folder / "report_again"
    done = sweep.cli.run("experiments.report", "--parent", sweep.parent.info.run_id,
                         "--out", str(out), "--no-log")
    assert done.returncode == 0, done.stderr
    assert "2 runs: 2 FINISHED" in done.stdout
    table = (out / "summary.md").read_text()
    for child in sweep.children:
        assert child.info.run_name in table
    assert {p.name for p in out.glob("*.png")} == {
        "learning_curves_loss.png", "learning_curves_acc.png", "accuracy_by_group.png"}
    assert "No accuracy_vs_size.png: the sweep has one training-set size (n_train=200)" in table


def test_rerun_reproduces_the_metric_series_and_says_what_machine_differs(sweep):
    original = sweep.children[1]
    # As if the run had been logged on another BLAS kernel: the rerun must say so (here the
    # kernel is in fact the same, so the numbers still match).
    logged_kernel = original.data.tags["blas_kernel"]
    sweep.client.set_tag(original.info.run_id, "blas_kernel", "Prescott")
    done = sweep.cli.run("experiments.rerun", original.info.run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"BLAS kernel differs: the run used Prescott, this is {logged_kernel}"
            in done.stderr), done.stderr
    assert "code differs" not in done.stderr and "CPU differs" not in done.stderr
    assert "DIFFERENT" not in done.stdout and "identical" in done.stdout
    client = sweep.client
    reruns = client.search_runs(
        [original.info.experiment_id],
        filter_string=f"tags.rerun_of = '{original.info.run_id}'")
    assert len(reruns) == 1
    rerun = reruns[0]
    assert rerun.info.status == "FINISHED"
    assert rerun.data.params == original.data.params
    assert rerun.data.tags["data_digest"] == original.data.tags["data_digest"]
    for key in ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "test_loss", "test_acc"]:
        old = [(m.step, m.value) for m in client.get_metric_history(original.info.run_id, key)]
        new = [(m.step, m.value) for m in client.get_metric_history(rerun.info.run_id, key)]
        assert sorted(new) == sorted(old), key
