"""`make sweep-parallel` declines, with a one-line reason, when parallel jobs would be
slower than one after the other, and then runs the sweep sequentially."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.sweeps.plan import (
    MIN_JOBS_PER_WORKER,
    count_jobs,
    decline_reason,
    parallel_plan,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("overrides", "jobs"), [
    (["sweep=convergence"], 36),  # the preset: 4 inits x 3 rates x 3 sizes
    (["sweep=convergence", "init=he,xavier", "optim.lr=0.03,0.3"], 12),  # lists replace
    (["sweep=convergence", "init=he", "optim.lr=0.03"], 3),  # single values too
    (["sweep=learning_curve_full", "experiment=seed_full"], 15),
    (["init=he,xavier", "trainer.seed=range(3)"], 6),  # a sweep given on the command line
    (["model=seed"], 1),
    (["sweep=search"], 12),  # a search: its trial budget
    (["sweep=search", "hydra.sweeper.n_trials=30"], 30),
])
def test_count_jobs_reads_presets_and_command_line(overrides, jobs):
    assert count_jobs(overrides) == jobs


def test_a_search_in_parallel_asks_its_sampler_for_as_many_trials_at_a_time(monkeypatch):
    monkeypatch.setattr("experiments.sweeps.plan.cpu_count", lambda: 2)
    launcher, reason = parallel_plan(["sweep=search", "hydra.sweeper.n_trials=16"], 2)
    assert reason is None
    assert launcher == ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                        "hydra.sweeper.n_jobs=2"]
    grid, _ = parallel_plan(["sweep=convergence"], 2)
    assert grid == ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]


def test_decline_reasons():
    assert decline_reason(36, 2, 2) is None
    assert decline_reason(MIN_JOBS_PER_WORKER * 2, 2, 2) is None  # 8 jobs: measured 1.13x
    few = decline_reason(4, 2, 2)  # measured 1.45x slower
    assert "4 job(s) on 2 workers" in few and "\n" not in few
    assert "JOBS=1" in decline_reason(36, 1, 8)
    assert "one core" in decline_reason(36, 2, 1)
    assert "try JOBS=2" in decline_reason(36, 4, 2)
    assert decline_reason(64, 4, 8) is None


def _make_sweep_parallel(folder: Path, cifar_root: Path, args: str, jobs: int = 2):
    # make -f from a temporary folder, so the sweep's store and outputs land there
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "CIFAR10_ROOT": str(cifar_root),
           "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}
    return subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "sweep-parallel",
                           f"PY={sys.executable}", "STAMP=", f"JOBS={jobs}", f"ARGS={args}"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a whole sweep through make: parent run, 2 trainings, report
@pytest.mark.mlflow
def test_make_sweep_parallel_declines_a_short_sweep_and_runs_it_in_turn(cifar_root, tmp_path):
    args = ("init=he,xavier optim.lr=0.03 data.n_train=1000 model=seed data.n_train=100 "
            "data.n_val=0 trainer.epochs=1 trainer.progress=false trainer.health_checks=false "
            "tracking.log_model=false tracking.log_dataset=false")
    done = _make_sweep_parallel(tmp_path, cifar_root, args)
    assert done.returncode == 0, done.stderr[-3000:]
    reasons = [line for line in done.stderr.splitlines() if line.startswith("sweep-parallel:")]
    assert reasons == ["sweep-parallel: running the 2 job(s) one after the other: "
                       + decline_reason(2, 2, 2)]
    # sequential: no local server was started, and both runs are in the store
    assert not list(tmp_path.rglob("mlflow_server.log"))
    assert "MLflow tracking server at" not in done.stderr
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # the parent and 2 jobs


def test_make_sweep_parallel_goes_parallel_when_it_pays():
    # what make would run, without running it: the plan asks for the parallel launcher
    done = subprocess.run([sys.executable, "-m", "experiments.sweep_plan", "--jobs", "2",
                           "sweep=convergence"], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    cores = len(os.sched_getaffinity(0))
    if cores >= 2:
        assert done.stdout.split() == ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
        assert "sweep-parallel:" not in done.stderr
    else:
        assert done.stdout.split() == [] and "one core" in done.stderr
