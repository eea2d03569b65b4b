"""End to end: a tiny sweep with one run whose units die (lr 1: one step's huge loss kills
relu2) and one that diverges (lr 1000: the loss overflows in its second epoch). Each run's
training diagnosis, tagged at its end and in the sweep's summary, names its cause as its
own logged metrics show it."""

from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "init=he", "data.n_train=200", "data.n_val=100", "trainer.epochs=3",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.checkpoint_every=0",
        "tracking.log_model=false", "tracking.log_dataset=false"]
DYING, DIVERGING = "seed-he-lr1-n200-s0", "seed-he-lr1000-n200-s0"


@pytest.fixture(scope="module")
def sweep(module_harness_cli):
    cli = module_harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "optim.lr=1.0,1000.0",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}", timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "sweep_dir" in r.data.tags]
    children = {r.info.run_name: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    summary = client.download_artifacts(parent.info.run_id, "report/summary.md", str(cli.folder))
    with open(summary) as f:
        return SimpleNamespace(client=client, runs=children, summary=f.read())


def history(client, run, key):
    return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}


def test_the_dying_run_is_diagnosed_with_the_layer_and_epoch_its_units_died(sweep):
    run = sweep.runs[DYING]
    assert run.info.status == "FINISHED"
    dead = history(sweep.client, run, "watch.relu2.dead_frac")
    assert dead[0] < 0.9  # alive at initialisation
    died = min(step for step, value in dead.items() if value >= 0.9)
    relu1 = history(sweep.client, run, "watch.relu1.dead_frac")
    assert all(value < 0.9 for value in relu1.values())
    text = run.data.tags["training_diagnosis"]
    assert text.startswith(f"units died at epoch {died} (dead fraction on the probe images: "
                           f"relu2 {dead[0]:.2g} → {dead[died]:.3g})"), text
    assert "relu1" not in text and "diverged" not in text
    assert run.data.tags["converged"] == "false" and run.data.tags["num_classes"] == "10"


def test_the_diverging_run_is_diagnosed_with_the_epoch_and_step_it_diverged(sweep):
    run = sweep.runs[DIVERGING]
    tags = run.data.tags
    assert run.info.status == "FAILED" and tags["error_type"] == "DivergenceError"
    text = tags["training_diagnosis"]
    assert text.startswith(f"diverged at epoch {tags['failure_epoch']}, step "
                           f"{tags['failure_step']}: the loss became "), text
    assert tags["converged"] == "false"


def test_the_summary_lists_both_with_the_rule_and_their_training_diagnosis(sweep):
    assert "By this report's rule, a run converged when it FINISHED" in sweep.summary
    for name, run in sweep.runs.items():
        (line,) = [line for line in sweep.summary.splitlines()
                   if line.startswith(f"- **{name}**")]
        assert f"during training: {run.data.tags['training_diagnosis']}. " in line
        assert "Diagnosis before training: " in line
