"""The search preset (conf/sweep/search.yaml, Optuna's TPE): what it composes, the search
report's history, and a tiny search (3 trials of one epoch) through the sweep and its report."""

from __future__ import annotations

import csv
import math

import pytest
from hydra import compose, initialize_config_module

from experiments.config.compose import register_configs
from experiments.reporting.collect import RunSummary
from experiments.reporting.search import best_trial, rerun_command, trials
from experiments.sweeps.plan import sweeper_kind
from experiments.tracking import tags

TINY = ["sweep=search", "hydra.sweeper.n_trials=3", "data.n_train=100", "data.n_val=50",
        "trainer.epochs=1", "trainer.progress=false", "trainer.health_checks=false",
        "trainer.layer_stats=false", "trainer.checkpoint_every=0",
        "tracking.log_model=false", "tracking.log_dataset=false"]


def test_preset_searches_rate_decay_and_batch_with_a_seeded_tpe():
    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["sweep=search"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper_kind(cfg.hydra) == "optuna" and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == 0 and sweeper.n_trials == 12
    assert sweeper.params["optim.lr"].startswith("tag(log, interval(")
    assert sweeper.params["optim.weight_decay"].startswith("tag(log, interval(")
    assert sweeper.params["trainer.batch_size"].startswith("choice(")
    assert cfg.model.name == "seed" and cfg.data.n_train == 1000 and cfg.trainer.epochs == 20


def _run(job: int, acc: float | None, lr: str) -> RunSummary:
    return RunSummary(run_id=f"id{job}", name=f"run{job}", status="FAILED" if acc is None
                      else "FINISHED", init="he", lr=float(lr), n_train="100", seed="0",
                      test_acc=acc, params={"optim.lr": lr},
                      tags={tags.JOB_NUM: str(job),
                            tags.OVERRIDES: f"optim.lr={lr} sweep=search data.n_train=100"})


def test_history_is_the_running_best_in_trial_order_and_skips_failed_trials():
    # Out of order on purpose: the job number orders the trials, not the listing.
    runs = [_run(2, None, "0.3"), _run(0, 0.2, "0.01"), _run(3, 0.25, "0.02"),
            _run(1, 0.3, "0.05"), _run(4, 0.3, "0.04")]
    history = trials(runs)
    assert [t.number for t in history] == [0, 1, 2, 3, 4]
    assert [t.best_so_far for t in history] == [0.2, 0.3, 0.3, 0.3, 0.3]
    assert math.isnan(history[2].accuracy)
    best = best_trial(history)
    assert best.number == 1  # the earlier of two equal trials
    assert rerun_command(best, "search") == ("python -m experiments.train sweep=search "
                                             "hydra.mode=RUN optim.lr=0.05 data.n_train=100")
    assert best_trial(trials([_run(0, None, "0.3")])) is None


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.slow
def test_tiny_search_nests_its_trials_and_reports_history_and_best(harness_cli):
    done = harness_cli.run("experiments.train", *TINY, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = harness_cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn").experiment_id
    runs = client.search_runs([experiment])
    [parent] = [r for r in runs if tags.PARENT not in r.data.tags]
    children = [r for r in runs if r.data.tags.get(tags.PARENT) == parent.info.run_id]
    assert len(children) == 3 and len(runs) == 4
    assert all(r.info.status == "FINISHED" for r in runs)
    assert parent.data.tags[tags.SWEEPER] == "optuna"
    assert sorted(r.data.tags[tags.JOB_NUM] for r in children) == ["0", "1", "2"]
    # Every trial drew its own values within the preset's ranges.
    lrs = {float(r.data.params["optim.lr"]) for r in children}
    assert len(lrs) == 3 and all(0.001 <= lr <= 0.3 for lr in lrs)
    assert {r.data.params["trainer.batch_size"] for r in children} <= {"32", "64", "128", "256"}

    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/search_history.png", "report/search_history.csv",
            "report/best_config.txt"} <= files
    folder = harness_cli.folder / "report"
    history = client.download_artifacts(parent.info.run_id, "report/search_history.csv",
                                        str(harness_cli.folder))
    with open(history) as f:
        rows = list(csv.DictReader(f))
    by_job = {r.data.tags[tags.JOB_NUM]: r for r in children}
    logged = [by_job[row["trial"]].data.metrics["test_acc"] for row in rows]
    assert [row["trial"] for row in rows] == ["0", "1", "2"]
    assert [float(row["test_acc"]) for row in rows] == pytest.approx(logged, abs=1e-4)
    running = [max(logged[:i + 1]) for i in range(len(logged))]
    assert [float(row["best_so_far"]) for row in rows] == pytest.approx(running, abs=1e-4)
    assert parent.data.metrics["best_test_acc"] == pytest.approx(max(logged))

    best = max(children, key=lambda r: r.data.metrics["test_acc"])
    text = open(client.download_artifacts(parent.info.run_id, "report/best_config.txt",
                                          str(folder))).read()
    command = text.splitlines()[-1]
    assert command.startswith("python -m experiments.train sweep=search hydra.mode=RUN ")
    assert f"optim.lr={best.data.params['optim.lr']}" in command.split()
    assert f"trainer.batch_size={best.data.params['trainer.batch_size']}" in command.split()
    assert "data.n_train=100" in command.split()
