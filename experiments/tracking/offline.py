"""Per-epoch tracking that lets training go on while the tracking server is away.

Policy: tracking never stops training. What cannot be sent is kept and sent later; at the
end of training, what is still unsent is written next to the run's checkpoint, and
`make resume RUN_ID=<id> ARGS=--force` sends it once the server is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import mlflow
import requests

from experiments.tracking import disk, signals
from experiments.tracking.history import BATCH, log_metrics_batched

log = logging.getLogger(__name__)

OFFLINE_FILE = "unsent_metrics.json"  # next to the run's local checkpoint


def is_tracking_outage(error: BaseException) -> bool:
    """Whether an error means the tracking server cannot be reached (not a bad request)."""
    if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                          ConnectionError, TimeoutError)):
        return True
    text = str(error)
    return isinstance(error, mlflow.exceptions.MlflowException) and any(
        s in text for s in ("Max retries exceeded", "Connection refused", "Failed to establish",
                            "timed out", "API request to", "ConnectionError"))


class OfflineBuffer:
    """Per-epoch tracking that lets training go on while the tracking server is away.

    Policy: tracking never stops training. Metrics that cannot be sent are kept and sent
    again with the next epoch's (their steps and timestamps unchanged); a checkpoint that
    cannot be uploaded is uploaded when the server answers again. At the end of training
    `settle` waits up to `wait_s` for the server; if it is still away, the unsent metrics
    are written to `offline_path` (JSON) and TrackingUnavailableError says where, and that
    `make resume RUN_ID=<id> ARGS=--force` sends them and finishes the run once the server
    is back.
    """

    def __init__(self, run_id: str, offline_path: Path, wait_s: float = 60.0) -> None:
        self.run_id, self.offline_path, self.wait_s = run_id, Path(offline_path), wait_s
        self.pending: list[mlflow.entities.Metric] = []
        self.pending_upload: tuple[str, str] | None = None  # (local file, artifact folder)
        self.offline_since: float | None = None
        self.last_failure = 0.0  # time.monotonic() of the last failed call
        self.retry_every_s = 5.0  # while away, try again at most this often

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.pending += [mlflow.entities.Metric(k, float(v), now, step)
                         for k, v in metrics.items()]

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.add(metrics, step)
        self.flush()

    def upload(self, path: str | Path, artifact_path: str) -> None:
        self.pending_upload = (str(path), artifact_path)
        self.flush()

    def guard(self, call, *args) -> bool:
        """Run a tracking call; an outage is noted (and False returned), other errors raise.

        Into a database store (SQLite, PostgreSQL) the call is a transaction in this
        process: a stop signal waits until it is over (signals.ending), since one raised
        inside it can leave SQLite locked for the writes that end the run. A server's
        request is not deferred: while it is away, a stop must not wait for the retries."""
        try:
            with signals.ending() if is_database_store() else contextlib.nullcontext():
                call(*args)
        except Exception as e:
            if not is_tracking_outage(e):
                raise
            self.last_failure = time.monotonic()
            if self.offline_since is None:
                self.offline_since = self.last_failure
                log.warning("the tracking server cannot be reached (%s); training goes on, "
                            "and its metrics are kept and sent when it answers again",
                            str(e).splitlines()[0][:200])
            return False
        if self.offline_since is not None and not self.pending:
            log.warning("the tracking server answers again; the kept metrics were sent")
            self.offline_since = None
        return True

    def _send_pending(self) -> None:
        while self.pending:
            sent = log_metrics_batched(mlflow.MlflowClient(), self.run_id, self.pending[:BATCH])
            del self.pending[:sent]

    def flush(self, force: bool = False) -> bool:
        """Send what is kept; True if nothing is left. While the server is away, tries at
        most every retry_every_s seconds unless forced."""
        if (not force and self.offline_since is not None
                and time.monotonic() - self.last_failure < self.retry_every_s):
            return not self.pending and self.pending_upload is None
        if self.pending and not self.guard(self._send_pending):
            return False
        if self.pending_upload is not None:
            path, folder = self.pending_upload
            try:
                sent = self.guard(mlflow.MlflowClient().log_artifact, self.run_id, path, folder)
            except Exception as e:
                if not disk.is_disk_full(e):
                    raise
                name = f"{folder}/{Path(path).name}"
                raise disk.disk_full_error(
                    e, f"run {self.run_id}'s artifact {name}",
                    [disk.artifact_place(self.run_id, name)],
                    f"Its local copy {path} is whole: free space there, then `make resume "
                    f"RUN_ID={self.run_id}` continues from it.") from e
            if not sent:
                return False
            self.pending_upload = None
        return True

    def settle(self) -> None:
        """At the end of training: wait up to wait_s for the server, else save and raise."""
        deadline = time.monotonic() + self.wait_s
        while not self.flush(force=True):
            if time.monotonic() >= deadline:
                self.save_offline()
                raise TrackingUnavailableError(
                    f"the tracking server {mlflow.get_tracking_uri()} is still unreachable "
                    f"after training; run {self.run_id} stays RUNNING there. Its "
                    f"{len(self.pending)} unsent metric values are in {self.offline_path} and "
                    f"its final checkpoint next to it. When the server is back, "
                    f"`make resume RUN_ID={self.run_id} ARGS=--force` sends them, evaluates "
                    f"and finishes the run.")
            time.sleep(2.0)

    def save_offline(self) -> None:
        with disk.naming_full_disk(
                f"the {len(self.pending)} unsent metric values of run {self.run_id}",
                [self.offline_path], "They are lost: free space there, so that the next run "
                "interrupted while the tracking server is away can keep its own."):
            self.offline_path.parent.mkdir(parents=True, exist_ok=True)
            self.offline_path.write_text(json.dumps(
                {"run_id": self.run_id,
                 "metrics": [[m.key, m.value, m.timestamp, m.step] for m in self.pending]}))


class TrackingUnavailableError(RuntimeError):
    """The tracking server stayed unreachable; the message says where the data was kept."""


def send_offline_metrics(run_id: str, path: Path) -> int:
    """Log the metrics an OfflineBuffer saved for `run_id`; return how many. The file is
    renamed to *.sent afterwards so they are not sent twice."""
    data = json.loads(Path(path).read_text())
    if data.get("run_id") != run_id:
        raise ValueError(f"{path} holds metrics of run {data.get('run_id')}, not {run_id}")
    metrics = [mlflow.entities.Metric(k, v, t, s) for k, v, t, s in data["metrics"]]
    log_metrics_batched(mlflow.MlflowClient(), run_id, metrics)
    os.replace(path, str(path) + ".sent")
    return len(metrics)


def is_database_store() -> bool:
    """Whether the active tracking URI is a database this process writes itself."""
    return not mlflow.get_tracking_uri().startswith(("http://", "https://", "databricks"))
