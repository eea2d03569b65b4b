"""Mark runs left RUNNING by a crashed process as KILLED (`python -m experiments.reap`).

A run's status is set when its process ends it; a machine crash, an out-of-memory kill
or SIGKILL ends the process first and leaves the run RUNNING for ever. Every training
run is created tagged with its `host` and `pid` (tracking.lifecycle.owner_tags), so a
RUNNING run tagged with this machine's name and a process id that no longer exists is
certainly dead: it is marked KILLED, with `failure_reason` saying why. One whose process
is alive here is never marked. Runs from other machines cannot be checked that way;
`--older-than HOURS` also marks any of them with no activity (start, or latest metric)
for that long. Runs without those tags (made by older code, or by hand) are listed as
unchecked; `--older-than` or `--untagged` marks them. Nothing else is changed; a reaped
run can then be continued with `make resume RUN_ID=<id>`.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import mlflow
from mlflow.entities import ViewType

from experiments.tracking import tags
from experiments.tracking.store import connect, open_store


@dataclass
class Reaped:
    run_id: str
    name: str
    experiment: str
    reason: str


def process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_activity_ms(run: mlflow.entities.Run) -> int:
    """The run's start or its latest logged metric, in ms since the epoch."""
    stamps = [run.info.start_time or 0]
    stamps += [m.timestamp for m in getattr(run.data, "_metric_objs", [])]
    return max(stamps)


def is_untagged(run: mlflow.entities.Run) -> bool:
    """Whether the run says nothing of the process that trains it (no host or pid tag)."""
    run_tags = run.data.tags
    return not run_tags.get(tags.HOST) or not run_tags.get(tags.PID, "").isdigit()


def why_dead(run: mlflow.entities.Run, host: str, older_than_h: float | None,
             now_ms: int, untagged: bool = False) -> str | None:
    """The reason to mark this RUNNING run KILLED, or None to leave it."""
    run_tags = run.data.tags
    pid = run_tags.get(tags.PID, "")
    if run_tags.get(tags.HOST) == host and pid.isdigit():
        if process_exists(int(pid)):
            return None  # alive here, however idle: reaping it would make a second writer
        return f"reaped: its process {pid} on {host} is gone"
    if untagged and is_untagged(run):
        return "reaped: RUNNING with no host or pid tag (--untagged)"
    if older_than_h is not None:
        idle_h = (now_ms - last_activity_ms(run)) / 3.6e6
        if idle_h >= older_than_h:
            return f"reaped: RUNNING with no activity for {idle_h:.1f} h"
    return None


def reap(tracking_uri: str | None = None, older_than_h: float | None = None,
         dry_run: bool = False, untagged: bool = False) -> tuple[list[Reaped], list[Reaped]]:
    """Find stale RUNNING runs in every experiment of the store; mark them KILLED.

    Returns the runs marked (or, with dry_run, to be marked), and the RUNNING runs left
    that carry no host or pid tag, which nothing here could check."""
    open_store(connect(tracking_uri))
    client = mlflow.MlflowClient()
    host, now_ms = socket.gethostname(), int(time.time() * 1000)
    experiments = {e.experiment_id: e.name for e in client.search_experiments(ViewType.ALL)}
    if not experiments:
        return [], []
    running = client.search_runs(list(experiments), "attributes.status = 'RUNNING'",
                                 run_view_type=ViewType.ACTIVE_ONLY, max_results=50000)
    reaped, unchecked = [], []
    for run in running:
        reason = why_dead(run, host, older_than_h, now_ms, untagged)
        found = Reaped(run.info.run_id, run.info.run_name or "",
                       experiments[run.info.experiment_id], reason or "no host or pid tag")
        if reason is None:
            if is_untagged(run):
                unchecked.append(found)
            continue
        if not dry_run:
            client.set_tag(run.info.run_id, tags.FAILURE_REASON, reason)
            client.set_terminated(run.info.run_id, status="KILLED")
        reaped.append(found)
    return reaped, unchecked
