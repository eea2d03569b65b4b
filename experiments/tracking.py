"""MLflow helpers: which store, what a run is tagged with, and how a run ends.

The store is MLflow's own default, made explicit: SQLite `mlflow.db` in the working
directory, artifacts under `./mlruns`, unless `MLFLOW_TRACKING_URI` (or the config's
`tracking.uri`) says otherwise. It is set explicitly because MLflow falls back to its
legacy file store when it finds an old `./mlruns` folder, and this project never uses that.

`ended_run` guarantees that no run is left RUNNING: it ends FINISHED, FAILED (an
exception, or a loss that became NaN/inf) or KILLED (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

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


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt inside the block, so it is handled like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        mlflow.end_run(status=status)


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
    if "://" not in uri:
        return Path(uri)
    return None


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
