"""A search over replicates (`sweep=search search.seeds=k`, experiments.sweeps.trial): each
trial is one run holding the mean over k seeds, the objective Optuna is told, with a run
per seed nested under it; the report counts trials, not seed runs; a stop during a seed
ends the seed, the trial and the sweep KILLED; search.seeds is checked before any run."""

from __future__ import annotations

import csv
import json
import math
import statistics

import mlflow
import pytest
import yaml

from experiments.config import ConfigError, compose_config, validate
from experiments.reporting.collect import RunSummary, trained_runs
from experiments.reporting.search import write_search_report
from experiments.sweeps.parent import end_orphaned_runs
from experiments.sweeps.trial import replicate_seeds, seeds_problem
from experiments.tracking import tags

TINY = ["sweep=search", "hydra.sweeper.n_trials=2", "search.seeds=2", "trainer.seed=3",
        "model=seed", "data.n_train=200", "data.n_val=100", "trainer.epochs=1",
        "trainer.progress=false", "trainer.health_checks=false", "trainer.layer_stats=false",
        "trainer.checkpoint_every=0", "tracking.log_model=false", "tracking.log_dataset=false"]


def _by_parent(runs):
    found = {}
    for r in runs:
        found.setdefault(r.data.tags.get(tags.PARENT), []).append(r)
    return found


def _half_width(values):
    from scipy import stats

    return stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(
        len(values))


# -- the config ----------------------------------------------------------------------------


def test_seeds_default_to_one_and_the_seeds_start_at_trainer_seed():
    cfg = compose_config(["trainer.seed=5", "search.seeds=3"])
    assert compose_config().search.seeds == 1
    assert replicate_seeds(cfg) == [5, 6, 7]


def test_seeds_below_one_and_unknown_search_keys_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"search\.seeds must be >= 1.*got 0"):
        validate(compose_config(["search.seeds=0"]))
    with pytest.raises(Exception, match="seedz"):
        compose_config(["search.seedz=2"])


def test_seeds_above_one_need_a_search_that_does_not_vary_the_seed():
    assert seeds_problem(1, None) is None and seeds_problem(3, "optuna") is None
    assert "a single run" in seeds_problem(2, None)
    assert "a grid sweep" in seeds_problem(2, "grid")
    assert "trainer.seed" in seeds_problem(2, "optuna", ["optim.lr", "trainer.seed"])


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.parametrize("args", [
    ["sweep=search", "search.seeds=0"],
    ["search.seeds=2"],  # a single run
    ["-m", "trainer.seed=0,1", "search.seeds=2"],  # a grid sweep
], ids=["zero", "single-run", "grid"])
def test_a_seed_count_that_cannot_be_used_is_refused_before_any_run(harness_cli, args):
    done = harness_cli.run("experiments.train", *args, "data.n_train=200",
                           "trainer.epochs=1", "trainer.progress=false",
                           f"hydra.sweep.dir={harness_cli.folder / 'mr'}")
    assert done.returncode != 0, done.stdout[-2000:]
    assert "search.seeds" in done.stderr, done.stderr[-3000:]
    client = harness_cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []


# -- the report, from runs read back -------------------------------------------------------


def _summary(name, acc, seed, trial=None, metrics=None, job=0):
    run_tags = {tags.JOB_NUM: str(job), tags.OVERRIDES: "optim.lr=0.01 search.seeds=2"}
    if trial:
        run_tags[tags.TRIAL_SEEDS] = trial
    return RunSummary(run_id=name, name=name, status="FINISHED", init="he", lr=0.01,
                      n_train="200", seed=seed, test_acc=acc, params={"optim.lr": "0.01"},
                      tags=run_tags, metrics=metrics or {})


def test_search_report_lists_trials_with_their_seeds_not_the_seed_runs(tmp_path):
    seeds = [[_summary(f"t{j}s{s}", acc, str(s)) for s, acc in zip((0, 1), accs, strict=True)]
             for j, accs in enumerate([(0.2, 0.3), (0.4, 0.0)])]
    trials = [_summary(f"t{j}", sum(a) / 2, "0 1", trial="0 1", job=j,
                       metrics={"seeds": 2.0, "test_acc_sd": 0.07, "test_acc_ci95": 0.6})
              for j, a in enumerate([(0.2, 0.3), (0.4, 0.0)])]
    for trial, runs in zip(trials, seeds, strict=True):
        trial.replicates = runs
    assert [r.name for r in trained_runs(trials)] == ["t0s0", "t0s1", "t1s0", "t1s1"]
    _, section = write_search_report(trials, tmp_path, "search")
    with open(tmp_path / "search_history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["n_seeds"], r["test_acc"]) for r in rows] == [
        ("t0", "2", "0.2500"), ("t1", "2", "0.2000")]
    assert rows[0]["test_acc_ci95"] == "0.6000" and rows[0]["best_so_far"] == "0.2500"
    assert "mean over its 2 seeds" in section and "± 0.6000" in section
    command = (tmp_path / "best_config.txt").read_text().splitlines()[-1]
    assert "search.seeds" not in command and "optim.lr=0.01" in command.split()


@pytest.mark.mlflow
def test_a_dead_worker_s_seed_runs_end_killed_with_their_trial(tmp_path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "a"))
    parent = client.create_run(experiment).info.run_id
    trial = client.create_run(experiment, tags={tags.PARENT: parent,
                                                tags.TRIAL_SEEDS: "0 1"}).info.run_id
    done = client.create_run(experiment, tags={tags.PARENT: trial}).info.run_id
    client.set_terminated(done, "FINISHED")
    seed = client.create_run(experiment, tags={tags.PARENT: trial}).info.run_id
    other = client.create_run(experiment).info.run_id  # no run of this sweep
    names = end_orphaned_runs(client, parent, "its worker died")
    assert len(names) == 2
    status = {r: client.get_run(r).info.status for r in (trial, done, seed, other)}
    assert status == {trial: "KILLED", done: "FINISHED", seed: "KILLED", other: "RUNNING"}
    assert client.get_run(seed).data.tags[tags.FAILURE_REASON] == "its worker died"


# -- real searches -------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.slow
def test_a_search_over_two_seeds_nests_seed_runs_and_optimises_their_mean(harness_cli):
    sweep_dir = harness_cli.folder / "mr"
    done = harness_cli.run("experiments.train", *TINY, f"hydra.sweep.dir={sweep_dir}",
                           "+hydra.callbacks.returns._target_=hydra_probes.RecordReturns",
                           timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = harness_cli.client()
    runs = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    below = _by_parent(runs)
    [parent] = below[None]
    trials = below[parent.info.run_id]
    assert len(trials) == 2 and len(runs) == 1 + 2 + 4
    assert all(r.info.status == "FINISHED" for r in runs)
    means = {}
    for trial in trials:
        seeds = below[trial.info.run_id]
        assert trial.data.tags[tags.TRIAL_SEEDS] == "3 4"
        # The same seeds in every trial: trainer.seed, trainer.seed + 1.
        assert sorted(r.data.params["trainer.seed"] for r in seeds) == ["3", "4"]
        assert "trainer.seed" not in trial.data.params
        for key in ("optim.lr", "optim.weight_decay", "trainer.batch_size"):
            assert {r.data.params[key] for r in seeds} == {trial.data.params[key]}
        accuracies = [r.data.metrics["test_acc"] for r in seeds]
        m = trial.data.metrics
        assert m["test_acc_mean"] == pytest.approx(statistics.fmean(accuracies), abs=1e-12)
        assert m["test_acc_sd"] == pytest.approx(statistics.stdev(accuracies), abs=1e-12)
        assert m["test_acc_ci95"] == pytest.approx(_half_width(accuracies), abs=1e-12)
        assert m["seeds"] == 2 and m["seeds_diverged"] == 0
        means[trial.data.tags[tags.JOB_NUM]] = m["test_acc_mean"]
    assert sorted(means) == ["0", "1"]

    # What Optuna was told for each trial, and the best it kept, are those means.
    returns = [json.loads(line) for line in (sweep_dir / "returns.jsonl").read_text().splitlines()]
    assert {str(r["job"]): r["value"] for r in returns} == pytest.approx(means, abs=1e-12)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(means.values()), abs=1e-12)

    # The report: two trials of two seeds, not four runs.
    report = sweep_dir / "report"
    with open(report / "search_history.csv") as f:
        history = list(csv.DictReader(f))
    assert [(row["trial"], row["n_seeds"]) for row in history] == [("0", "2"), ("1", "2")]
    assert [float(row["test_acc"]) for row in history] == pytest.approx(
        [means["0"], means["1"]], abs=1e-4)
    with open(report / "summary.csv") as f:
        assert sorted(row["n"] for row in csv.DictReader(f)) == ["2", "2"]
    with open(report / "groups.csv") as f:
        assert [row["n"] for row in csv.DictReader(f)] == ["2", "2"]
    assert parent.data.metrics["runs"] == 2
    assert parent.data.metrics["best_test_acc"] == pytest.approx(max(means.values()))
    assert parent.data.tags[tags.SWEEP_JOBS].startswith("2 runs: 2 FINISHED")
    command = (report / "best_config.txt").read_text().splitlines()[-1]
    assert "search.seeds" not in command and "trainer.seed=3" in command.split()


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.slow
def test_a_diverged_seed_counts_as_zero_in_its_trial_s_mean(harness_cli):
    sweep_dir = harness_cli.folder / "mr"
    done = harness_cli.run(
        "experiments.train", *TINY, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep_dir}",
        "+hydra.callbacks.returns._target_=hydra_probes.RecordReturns",
        "+callbacks.fault._target_=faults.DivergeAfterEpoch", "+callbacks.fault.epoch=1",
        "+callbacks.fault.seed=${trainer.seed}", "+callbacks.fault.only_seed=4", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = harness_cli.client()
    below = _by_parent(client.search_runs(
        [client.get_experiment_by_name("cifar10-cnn").experiment_id]))
    [parent] = below[None]
    [trial] = below[parent.info.run_id]
    seeds = {r.data.params["trainer.seed"]: r for r in below[trial.info.run_id]}
    assert {k: r.info.status for k, r in seeds.items()} == {"3": "FINISHED", "4": "FAILED"}
    assert seeds["4"].data.tags[tags.ERROR_TYPE] == "DivergenceError"
    assert trial.info.status == "FINISHED"
    mean = seeds["3"].data.metrics["test_acc"] / 2
    assert trial.data.metrics["test_acc_mean"] == pytest.approx(mean, abs=1e-12)
    assert trial.data.metrics["seeds_diverged"] == 1
    [told] = [json.loads(line) for line in (sweep_dir / "returns.jsonl").read_text().splitlines()]
    assert told["value"] == pytest.approx(mean, abs=1e-12)


@pytest.mark.data
@pytest.mark.mlflow
@pytest.mark.slow
def test_a_stop_during_a_seed_run_ends_it_its_trial_and_the_sweep_killed(harness_cli):
    # SIGINT at the end of the second seed's first epoch (of two), in trial 0.
    done = harness_cli.run(
        "experiments.train", *TINY, "trainer.epochs=2", f"hydra.sweep.dir={harness_cli.folder}/mr",
        "+callbacks.fault._target_=faults.SignalAfterEpoch", "+callbacks.fault.epoch=1",
        "+callbacks.fault.seed=${trainer.seed}", "+callbacks.fault.only_seed=4", timeout=600)
    output = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode != 0, output
    client = harness_cli.client()
    runs = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    below = _by_parent(runs)
    [parent] = below[None]
    [trial] = below[parent.info.run_id]  # trial 1 never started
    seeds = {r.data.params["trainer.seed"]: r for r in below[trial.info.run_id]}
    assert {k: r.info.status for k, r in seeds.items()} == {"3": "FINISHED", "4": "KILLED"}
    assert trial.info.status == "KILLED" and parent.info.status == "KILLED", output
    for run in (seeds["4"], trial, parent):
        assert run.data.tags[tags.FAILURE_REASON] == "interrupted: received signal SIGINT"
    assert "test_acc_mean" not in trial.data.metrics
