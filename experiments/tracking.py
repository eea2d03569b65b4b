"""MLflow helpers: which store, what a run is tagged with, and how a run ends.

The store is MLflow's own default, made explicit: SQLite `mlflow.db` in the working
directory, artifacts under `./mlruns`, unless `MLFLOW_TRACKING_URI` (or the config's
`tracking.uri`) says otherwise. It is set explicitly because MLflow falls back to its
legacy file store when it finds an old `./mlruns` folder, and this project never uses that.

`ended_run` guarantees that no run is left RUNNING: it ends FINISHED, FAILED (an
exception, or a loss that became NaN/inf) or KILLED (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

from cnn.training import DivergenceError

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"
CODE_ROOT = Path(__file__).resolve().parents[1]  # the checkout holding cnn/ and experiments/

# Tag names, in one place so the report and rerun read what training writes.
TAG_GIT_COMMIT = "git_commit"
TAG_GIT_DIRTY = "git_dirty"
TAG_OVERRIDES = "hydra_overrides"
TAG_DATA_DIGEST = "data_digest"
TAG_SWEEP = "sweep"
TAG_RERUN_OF = "rerun_of"
TAG_FAILURE_REASON = "failure_reason"
TAG_FAILURE_EPOCH = "failure_epoch"
TAG_FAILURE_STEP = "failure_step"
TAG_ERROR_TYPE = "error_type"
PARENT_TAG = "mlflow.parentRunId"  # set by mlflow.start_run(parent_run_id=...)
TAG_HOST = "host"  # the machine and process training the run, for experiments.reap
TAG_PID = "pid"
TAG_RESUMED_FROM = "resumed_from_epoch"  # set by experiments.resume


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The store to use: the config's value, else $MLFLOW_TRACKING_URI, else ./mlflow.db.

    The default is made absolute so it names the same file whatever the process's working
    directory later becomes. Inside a parallel sweep's job, a SQLite store the sweep serves
    through a local tracking server (experiments.server) is reached through that server.
    """
    if configured:
        uri = configured
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri = os.environ["MLFLOW_TRACKING_URI"]
    else:
        uri = "sqlite:///" + os.path.abspath(DEFAULT_DB)
    served = os.environ.get(SWEEP_SERVER_ENV, "").split(" ", 1)  # "<store> <server uri>"
    if len(served) == 2 and same_store(uri, served[0]):
        return served[1]
    return uri


# Set by a parallel sweep for its jobs: "<sqlite store URI> <http URI of its server>".
SWEEP_SERVER_ENV = "EXPERIMENTS_SWEEP_SERVER"


def same_store(a: str, b: str) -> bool:
    """Whether two store URIs name the same store (sqlite paths compared absolute)."""
    def norm(uri: str) -> str:
        if uri.startswith("sqlite:///"):
            return "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
        return uri.rstrip("/")
    return norm(a) == norm(b)


def use_store(configured: str | None, experiment: str) -> str:
    """Point MLflow at the store and experiment; return the experiment id."""
    mlflow.set_tracking_uri(resolve_tracking_uri(configured))
    return mlflow.set_experiment(experiment).experiment_id


# -- what the code was -----------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=CODE_ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> tuple[str, bool, str]:
    """(commit, dirty, diff) of the code being run; ("unknown", False, "") outside git.

    `diff` is `git diff HEAD` (tracked files; new untracked files are only listed), so a
    dirty run can be reproduced by applying it to the commit.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown", False, ""
    status = _git("status", "--porcelain") or ""
    diff = _git("diff", "HEAD") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    if untracked:
        diff += "\n# untracked files (not in the diff):\n" + "".join(
            f"#   {path}\n" for path in untracked
        )
    return commit.strip(), bool(status.strip()), diff


# -- params ------------------------------------------------------------------------------------


def flatten(container: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


# -- how a run ends ----------------------------------------------------------------------------


# SIGUSR2: SLURM's warning to a job of hydra/launcher=slurm that its time limit is near (or
# that it is preempted), which submitit asks for with --signal=USR2@<signal_delay_s>.
# submitit's own handler raises its error wherever the job is; inside an MLflow request
# that error is taken for an unreachable server, and the job trains on until SLURM kills it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    why = " from SLURM: time limit near, or preempted" if signum == signal.SIGUSR2 else ""
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}{why}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (and SLURM's SIGUSR2) into KeyboardInterrupt inside the block, so they
    are handled like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = {signum: signal.signal(signum, _raise_keyboard_interrupt)
                for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def ended_run(run_id: str, also_end: tuple[str, ...] = ()) -> Iterator[None]:
    """End the active run `run_id` when the block exits, with the status that fits.

    Normal exit: FINISHED. DivergenceError: FAILED, tagged with the epoch, step and reason.
    KeyboardInterrupt (Ctrl-C, or SIGTERM inside this block): KILLED, and so are the runs
    in `also_end` (a sweep's parent, since the whole sweep stops). Any other exception:
    FAILED with the error's type and message as tags. Exceptions propagate.
    """
    client = mlflow.MlflowClient()
    status = "FINISHED"
    try:
        with sigterm_as_interrupt():
            yield
    except DivergenceError as e:
        status = "FAILED"
        _safe_tags(client, run_id, {
            TAG_FAILURE_REASON: e.reason,
            TAG_FAILURE_EPOCH: str(e.epoch),
            TAG_FAILURE_STEP: str(e.step),
            TAG_ERROR_TYPE: "DivergenceError",
        })
        raise
    except KeyboardInterrupt as e:
        status = "KILLED"
        _safe_tags(client, run_id, {TAG_FAILURE_REASON: f"interrupted: {e or 'Ctrl-C'}"})
        for other in also_end:
            _safe_end(client, other, "KILLED")
        raise
    except BaseException as e:
        status = "FAILED"
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        _safe_tags(client, run_id, {TAG_FAILURE_REASON: text[:5000],
                                    TAG_ERROR_TYPE: type(e).__name__})
        raise
    finally:
        # The SIGTERM handler is gone here, so a second signal cannot interrupt the ending.
        try:
            mlflow.end_run(status=status)
        except Exception as e:
            if not is_tracking_outage(e):
                raise
            # Do not hide why the run stopped behind the server being away.
            log.error("could not end run %s as %s: the tracking server is unreachable",
                      run_id, status)


def _safe_tags(client: mlflow.MlflowClient, run_id: str, tags: Mapping[str, str]) -> None:
    # Recording why a run failed must not hide the failure itself.
    try:
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    except Exception:
        log.exception("could not tag run %s with its failure", run_id)


def _safe_end(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    try:
        client.set_terminated(run_id, status=status)
    except Exception:
        log.exception("could not end run %s as %s", run_id, status)


# -- can the store be written? -----------------------------------------------------------------


class StoreNotWritableError(RuntimeError):
    """The tracking database or the artifact folder cannot be written."""


def _local_path(uri: str) -> Path | None:
    """The file a sqlite:/// or file: URI (or a bare path) names; None for servers."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if uri.startswith("file:"):
        return Path(uri[len("file:"):])
    if ":" in uri.split("/", 1)[0] and len(uri.split(":", 1)[0]) > 1:
        return None  # another scheme: s3://, http://, mlflow-artifacts:/, ...
    return Path(uri)


def _check_writable(path: Path, what: str) -> None:
    """path (or, if it does not exist yet, its nearest existing parent) must be writable.

    A folder is probed by creating and deleting a file in it (permission bits say nothing
    for root, nor about read-only file systems); a file by opening it for appending.
    """
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if probe.is_dir():
            with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-probe-"):
                pass
        else:
            with open(probe, "ab"):
                pass
            if probe != path:  # a file where a folder should be
                raise NotADirectoryError(20, "Not a directory", str(probe))
    except OSError as e:
        raise StoreNotWritableError(
            f"the MLflow {what} {path} is not writable ({e.strerror or e}: {probe}); "
            f"fix it or point tracking.uri / MLFLOW_TRACKING_URI elsewhere. "
            f"Nothing was trained and no run was changed.") from e


def check_store_writable(tracking_uri: str, artifact_location: str | None = None) -> None:
    """Raise StoreNotWritableError naming the path if a local store cannot be written.

    Checked before a run starts, so a read-only folder fails at once with its name, not
    as a database error deep in SQLAlchemy after training. The SQLite file needs its folder
    writable too (for the journal). Remote stores are not checked here.
    """
    db = _local_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if db is not None:
        _check_writable(db, "database")
        if db.exists():
            _check_writable(db.parent, "database folder")
    if artifact_location:
        folder = _local_path(artifact_location)
        if folder is not None:
            _check_writable(folder, "artifact folder")


# -- when the tracking server goes away ----------------------------------------------------------


OFFLINE_FILE = "unsent_metrics.json"  # next to the run's local checkpoint


def is_tracking_outage(error: BaseException) -> bool:
    """Whether an error means the tracking server cannot be reached (not a bad request)."""
    import requests

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
        import time

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
        """Run a tracking call; an outage is noted (and False returned), other errors raise."""
        try:
            call(*args)
        except Exception as e:
            if not is_tracking_outage(e):
                raise
            import time

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
        client = mlflow.MlflowClient()
        while self.pending:
            client.log_batch(self.run_id, metrics=self.pending[:1000])
            del self.pending[:1000]

    def flush(self, force: bool = False) -> bool:
        """Send what is kept; True if nothing is left. While the server is away, tries at
        most every retry_every_s seconds unless forced."""
        import time

        if (not force and self.offline_since is not None
                and time.monotonic() - self.last_failure < self.retry_every_s):
            return not self.pending and self.pending_upload is None
        if self.pending and not self.guard(self._send_pending):
            return False
        if self.pending_upload is not None:
            path, folder = self.pending_upload
            if not self.guard(mlflow.MlflowClient().log_artifact, self.run_id, path, folder):
                return False
            self.pending_upload = None
        return True

    def settle(self) -> None:
        """At the end of training: wait up to wait_s for the server, else save and raise."""
        import time

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
    client = mlflow.MlflowClient()
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    os.replace(path, str(path) + ".sent")
    return len(metrics)
