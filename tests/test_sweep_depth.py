"""The depth study preset (conf/sweep/depth.yaml): what it composes, and a tiny version
of it (two depths, one epoch, tiny widths) through the sweep and its report."""

from __future__ import annotations

import csv

import pytest
from hydra import compose, initialize_config_module

from experiments.config.compose import register_configs
from experiments.reporting.depth import layer_order

TINY = ["sweep=depth", "model.depth=8,14", "model.widths=[4,8,8]", "data.n_train=200",
        "trainer.epochs=1", "trainer.batch_size=50", "trainer.progress=false",
        "tracking.log_model=false", "tracking.log_dataset=false"]


def test_preset_sweeps_plain_and_resnet_with_and_without_norm_over_depths():
    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["sweep=depth"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["model"] == "plain,resnet"
    assert params["model.norm"] == "batch,none"
    assert [int(d) for d in params["model.depth"].split(",")] == [8, 20, 32]
    assert cfg.init.name == "he" and cfg.trainer.health_checks is False
    assert cfg.trainer.layer_stats is True  # the gradient norms the report draws


def test_layers_sort_from_input_to_output():
    names = ["dense1", "stage2.block1.conv2", "stage1.block2.conv1", "conv1",
             "stage2.block1.conv1", "stage1.block10.conv1", "stage1.block2.conv2"]
    assert sorted(names, key=layer_order) == [
        "conv1", "stage1.block2.conv1", "stage1.block2.conv2", "stage1.block10.conv1",
        "stage2.block1.conv1", "stage2.block1.conv2", "dense1"]


@pytest.fixture(scope="module")
def tiny_study(module_harness_cli):
    done = module_harness_cli.run("experiments.train", *TINY, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return module_harness_cli


@pytest.mark.slow  # trains the 8 runs of a tiny depth sweep
def test_tiny_study_runs_every_combination_and_reports_depth(tiny_study):
    client = tiny_study.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    combos = {(r.data.params["model.name"], r.data.params["model.norm"],
               r.data.params["model.depth"]) for r in children}
    assert combos == {(f, n, d) for f in ("plain", "resnet") for n in ("batch", "none")
                      for d in ("8", "14")}
    assert all(r.info.status == "FINISHED" for r in runs)
    names = {r.info.run_name for r in children}
    assert "plain14-nonorm-he-lr0.05-n200-s0" in names and "resnet8-he-lr0.05-n200-s0" in names

    # Gradient norms before training (step 0) and after the epoch, for blocks' layers too.
    child = next(r for r in children if r.data.params["model.name"] == "resnet")
    steps = [m.step for m in client.get_metric_history(child.info.run_id,
                                                        "watch.stage3.block1.conv2.grad_norm")]
    assert sorted(steps) == [0, 1]

    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/accuracy_vs_depth.png", "report/gradient_flow.png"} <= report
    local = client.download_artifacts(parent.info.run_id, "report", str(tiny_study.folder))
    summary = open(f"{local}/summary.md").read()
    assert "## Depth study: test accuracy" in summary
    assert "| plain, norm none |" in summary and "| resnet, norm batch |" in summary
    with open(f"{local}/summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
