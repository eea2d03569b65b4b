"""experiments.tracking.reap never marks a run whose process is alive on this host, however
long it has been idle, and a RUNNING run without host or pid tags (which the code before
ended_run.starting left when a signal came right after the run was made) is reported as
unchecked and can be marked (issue 27, points 1 and 12)."""

import os
import socket
import subprocess
import sys
import time

import pytest

from experiments.tracking.reap import reap

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]  # each test makes a store: seconds

HOUR_MS = 3_600_000


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def store(tmp_path):
    """A store holding, started two hours ago: a run of this live process, one of a dead
    process of this host, one with no owner tags, and one of another machine."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("reap", artifact_location=str(tmp_path / "mlruns"))
    here = socket.gethostname()
    started = int(time.time() * 1000) - 2 * HOUR_MS
    owners = {"live": {"host": here, "pid": str(os.getpid())},
              "dead": {"host": here, "pid": str(dead_pid())},
              "untagged": {},
              "remote": {"host": "elsewhere", "pid": "1"}}
    ids = {name: client.create_run(experiment, start_time=started, tags=t, run_name=name
                                   ).info.run_id for name, t in owners.items()}
    return uri, client, ids


def statuses(client, ids):
    return {name: client.get_run(run_id).info.status for name, run_id in ids.items()}


def test_a_live_local_run_is_never_reaped_however_idle(store):
    uri, client, ids = store
    reaped, _ = reap(uri, older_than_h=0.0005)
    assert sorted(r.name for r in reaped) == ["dead", "remote", "untagged"]
    assert statuses(client, ids)["live"] == "RUNNING"


def test_an_untagged_run_is_reported_and_can_be_reaped(store):
    uri, client, ids = store
    reaped, unchecked = reap(uri)
    assert [r.name for r in reaped] == ["dead"]
    assert [r.name for r in unchecked] == ["untagged"]
    reaped, unchecked = reap(uri, untagged=True)
    assert [r.name for r in reaped] == ["untagged"] and unchecked == []
    assert statuses(client, ids) == {"live": "RUNNING", "dead": "KILLED",
                                     "untagged": "KILLED", "remote": "RUNNING"}
    tags = client.get_run(ids["untagged"]).data.tags
    assert "no host or pid tag" in tags["failure_reason"]
