"""Parallel sweeps on one machine (hydra/launcher=parallel, slurm_local): four jobs logging
at once into one SQLite store through the sweep's local tracking server, the BLAS threads
the workers inherit, and a worker killed mid-sweep."""

import re
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from experiments.sweeps import launchers
from experiments.tracking.server import is_up

TINY = ["model=seed", "data.n_train=100", "data.n_val=50", "trainer.epochs=2",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
        "tracking.log_model=false", "tracking.log_dataset=false"]
EPOCH_METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]
INITS = ["he", "xavier", "normal", "unit_normal"]


def sweep_runs(cli):
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "sweep_dir" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = {r.data.params.get("init.name"): r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return client, experiment, parent, children


def server_uri(output):
    found = re.findall(r"MLflow tracking server at (http://127\.0\.0\.1:\d+)", output)
    assert len(found) == 1, output[-3000:]
    return found[0]


# -- unit: launcher kinds and threads ---------------------------------------------------------


def launcher(target, **params):
    return OmegaConf.create({"hydra": {"launcher": {"_target_": target, **params}}})


def test_threads_per_job_share_the_cores(monkeypatch):
    monkeypatch.setattr(launchers, "cpu_count", lambda: 8)
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launchers.launcher_kind(launcher(joblib, n_jobs=2)) == "joblib"
    assert launchers.blas_threads(launcher(joblib, n_jobs=2)) == 4
    assert launchers.blas_threads(launcher(joblib, n_jobs=3)) == 2
    assert launchers.blas_threads(launcher(joblib, n_jobs=16)) == 1
    assert launchers.blas_threads(launcher(joblib, n_jobs=-1)) == 1  # joblib: all cores
    assert launchers.blas_threads(launcher(joblib, n_jobs=2), override=3) == 3
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert launchers.blas_threads(launcher(basic)) is None
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    assert launchers.launcher_kind(launcher(local)) == "submitit_local"
    assert launchers.blas_threads(launcher(local, cpus_per_task=2)) == 2
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launchers.launcher_kind(launcher(slurm)) == "submitit_slurm"


# -- four jobs at once ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_jobs(module_harness_cli):
    cli = module_harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "init=" + ",".join(INITS),
                   "hydra/launcher=parallel", "hydra.launcher.n_jobs=4",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    client, experiment, parent, children = sweep_runs(cli)
    return SimpleNamespace(cli=cli, client=client, experiment=experiment, parent=parent,
                           children=children, output=output)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_parallel_sweep_loses_no_run_param_or_metric(four_jobs):
    assert "Joblib.Parallel(n_jobs=4" in four_jobs.output
    assert "database is locked" not in four_jobs.output
    assert four_jobs.parent.info.status == "FINISHED"
    assert four_jobs.parent.data.tags["jobs"] == "4 runs: 4 FINISHED"
    assert sorted(four_jobs.children) == sorted(INITS)
    for init, child in four_jobs.children.items():
        assert child.info.status == "FINISHED", init
        params = child.data.params
        assert params["data.n_train"] == "100" and params["trainer.epochs"] == "2"
        assert params["optim.lr"] == "0.03" and params["model.name"] == "seed"
        assert len(params) > 30  # the whole flattened config
        for key in EPOCH_METRICS:
            history = four_jobs.client.get_metric_history(child.info.run_id, key)
            assert sorted(m.step for m in history) == [1, 2], (init, key)
        assert {"test_loss", "test_acc"} <= set(child.data.metrics)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_parallel_sweep_keeps_one_store_and_artifact_root(four_jobs):
    # The jobs logged through the server, into the same SQLite file and ./mlruns, which
    # `make ui` (or a client on the file) shows afterwards; the server is gone.
    uri = server_uri(four_jobs.output)
    assert not is_up(uri, timeout=2)
    assert (four_jobs.cli.folder / "multirun" / "mlflow_server.log").is_file()
    root = four_jobs.cli.folder / "mlruns"
    assert four_jobs.experiment.artifact_location.endswith(str(root / four_jobs.experiment
                                                                .experiment_id))
    for child in four_jobs.children.values():
        assert (root / child.info.experiment_id / child.info.run_id / "artifacts"
                / "weights.npz").is_file()
    assert (root / four_jobs.parent.info.experiment_id / four_jobs.parent.info.run_id
            / "artifacts" / "report" / "summary.md").is_file()


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_workers_inherit_the_blas_thread_limits(four_jobs):
    expected = max(1, launchers.cpu_count() // 4)
    logs = sorted((four_jobs.cli.folder / "multirun").glob("[0-9]*/train.log"))
    assert len(logs) == 4
    pids = set()
    for path in logs:
        text = path.read_text()
        found = re.search(r"BLAS threads in this job \(pid (\d+)\): (.*)", text)
        assert found, path
        pids.add(found.group(1))
        for name in launchers.THREAD_VARS:
            assert f"{name}={expected}" in found.group(2)
    assert len(pids) >= 2  # jobs ran in separate worker processes


# -- a worker killed mid-sweep --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_killed_worker_is_reported_and_the_rest_is_kept(harness_cli):
    cli = harness_cli
    # Job 2 (init=normal) SIGKILLs its own process after logging epoch 1 of 2.
    done = cli.run("experiments.train", "-m", *TINY, "init=he,xavier,normal",
                   "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                   "+callbacks.kill._target_=faults.KillAfterEpoch", "+callbacks.kill.epoch=1",
                   "+callbacks.kill.job=2",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-5000:]
    # A clear error: joblib's, naming the killed worker, and the sweep's own summary.
    assert "TerminatedWorkerError" in output or "unexpectedly terminated" in output, output
    assert "SIGKILL" in output
    assert re.search(r"run\(s\) were still RUNNING .* now KILLED", output), output[-3000:]
    assert not is_up(server_uri(output), timeout=2)

    client, _, parent, children = sweep_runs(cli)
    assert parent.info.status == "FAILED"
    statuses = {init: run.info.status for init, run in children.items()}
    assert "RUNNING" not in statuses.values(), statuses
    killed = children["normal"]
    assert killed.info.status == "KILLED"
    assert "worker process died" in killed.data.tags["failure_reason"]
    assert killed.info.run_name in parent.data.tags["killed_runs"]
    # What the killed job logged before it died is kept.
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "train_loss")] == [1]
    # Jobs 0 and 1 ran first, side by side; one finished before job 2 started. A job still
    # running when the worker died is stopped with it and is KILLED too, never RUNNING.
    finished = [init for init, s in statuses.items() if s == "FINISHED"]
    assert finished and set(finished) <= {"he", "xavier"}, statuses
    for init in finished:
        run_id = children[init].info.run_id
        for key in EPOCH_METRICS:
            assert sorted(m.step for m in client.get_metric_history(run_id, key)) == [1, 2]


# -- the SLURM launcher's code path, through submitit's local executor -------------------------


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_slurm_launcher_runs_through_submitit_locally(harness_cli):
    cli = harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "trainer.epochs=1", "init=he,xavier",
                   "hydra/launcher=slurm_local",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    _, _, parent, children = sweep_runs(cli)
    assert parent.info.status == "FINISHED"
    assert {init: r.info.status for init, r in children.items()} == {
        "he": "FINISHED", "xavier": "FINISHED"}
    # submitit's job folders: one pickled job and its logs per job.
    assert list((cli.folder / "multirun" / ".submitit").glob("*/*_submitted.pkl"))
    assert not is_up(server_uri(output), timeout=2)


@pytest.mark.mlflow
def test_slurm_launcher_refuses_a_local_store(harness_cli):
    done = harness_cli.run("experiments.train", "-m", *TINY, "hydra/launcher=slurm",
                           f"hydra.sweep.dir={harness_cli.folder / 'multirun'}")
    assert done.returncode != 0
    assert "tracking=server" in done.stdout + done.stderr


def test_a_job_waits_for_the_sweep_server_still_starting(monkeypatch, tmp_path):
    # The sweep launches its server without waiting; a job connecting before it answers
    # waits for /health instead of failing its first MLflow call.
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from experiments.tracking import store
    from experiments.tracking.server import free_port

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv(store.SWEEP_SERVER_ENV, f"{db} {uri}")
    monkeypatch.setattr(store.mlflow, "set_tracking_uri", lambda uri: None)  # no global state
    servers = []

    def serve_later():
        time.sleep(1.5)
        servers.append(HTTPServer(("127.0.0.1", port), Health))
        servers[0].serve_forever()

    threading.Thread(target=serve_later, daemon=True).start()
    started = time.monotonic()
    try:
        assert store.connect(db) == uri
        assert time.monotonic() - started >= 1.4  # it waited until the server answered
        assert is_up(uri)
    finally:
        while not servers:
            time.sleep(0.1)
        servers[0].shutdown()
