"""The tracking server that parallel sweeps and `python -m experiments.server` start
(experiments.tracking.server.TrackingServer) is `mlflow server` and its web server only:
none of MLflow's job runner and Huey consumers (its server-side GenAI jobs, which this
project never submits; about 220 MB each), while it answers /health and logs runs."""

import os
from pathlib import Path

import pytest

from experiments.tracking.server import TrackingServer, is_up

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]

# Command-line fragments of MLflow's job processes (mlflow/server/jobs/utils.py).
JOB_PROCESSES = ("mlflow.server.jobs", "huey_consumer")


def process_tree(root: int) -> dict[int, str]:
    """pid -> command line of `root` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # The parent pid is the second field after the command name, which may hold spaces.
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            tree[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        todo += children.get(pid, [])
    return tree


def test_local_server_starts_no_job_runner_and_still_logs_runs(tmp_path):
    from mlflow import MlflowClient

    server = TrackingServer(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts",
                            log_path=tmp_path / "server.log")
    try:
        uri = server.start(timeout=240)
        assert is_up(uri)
        client = MlflowClient(tracking_uri=uri)
        run = client.create_run(client.create_experiment("processes"))
        client.log_metric(run.info.run_id, "train_loss", 0.5, step=1)
        client.set_terminated(run.info.run_id)
        assert client.get_run(run.info.run_id).data.metrics == {"train_loss": 0.5}
        # MLflow starts its job runner right after the web server, so by now it would be up.
        tree = process_tree(server.process.pid)
        jobs = {pid: cmd for pid, cmd in tree.items()
                if any(fragment in cmd for fragment in JOB_PROCESSES)}
        assert not jobs, f"job processes in the server's tree: {jobs}"
        assert any("uvicorn" in cmd for cmd in tree.values()), tree
    finally:
        server.stop()
