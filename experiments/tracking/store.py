"""Which MLflow store a command uses, and whether it can be written.

The store is MLflow's own default, made explicit: SQLite `mlflow.db` in the working
directory, artifacts under `./mlruns`, unless `--tracking-uri`, the config's
`tracking.uri` or `MLFLOW_TRACKING_URI` says otherwise. It is set explicitly because MLflow
falls back to its legacy file store when it finds an old `./mlruns` folder, and this
project never uses that. A new SQLite store is created under a file lock, so that two
commands started at once in an empty folder do not both create its tables.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path

import mlflow

from experiments.tracking import tags
from experiments.tracking.server import wait_for

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"

# Set by a parallel sweep for its jobs: "<sqlite store URI> <http URI of its server>".
SWEEP_SERVER_ENV = "EXPERIMENTS_SWEEP_SERVER"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The store to use: the given value, else $MLFLOW_TRACKING_URI, else ./mlflow.db.

    The default is made absolute so it names the same file whatever the process's working
    directory later becomes. Inside a parallel sweep's job, a SQLite store the sweep serves
    through a local tracking server (tracking.server) is reached through that server.
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


def same_store(a: str, b: str) -> bool:
    """Whether two store URIs name the same store (sqlite paths compared absolute)."""
    def norm(uri: str) -> str:
        if uri.startswith("sqlite:///"):
            return "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
        return uri.rstrip("/")
    return norm(a) == norm(b)


def connect(configured: str | None = None) -> str:
    """Point MLflow at the store (see resolve_tracking_uri); return its URI.

    In a parallel sweep's job, the sweep's local server may still be starting (the sweep
    does not wait for it, so that its workers start meanwhile): wait until it answers.
    """
    uri = resolve_tracking_uri(configured)
    served = os.environ.get(SWEEP_SERVER_ENV, "").split(" ", 1)
    if len(served) == 2 and uri == served[1]:
        wait_for(uri)  # one request once the server is up
    check_sqlite_file(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def open_store(uri: str) -> None:
    """Open a SQLite store (MLflow keeps it for the process) holding a lock beside it, for
    the commands that write to it; other stores are left to open on first use.

    MLflow creates a new store's tables and runs its migrations when it first opens it;
    two processes doing so at once on one new file collided ("Online migration expected
    to match one row"), and one command died. The lock (`<store>.lock`, an flock, freed by
    the kernel if its holder dies) lets one create it while the other waits, then finds
    it made. A folder that does not exist is left for MLflow (and check_store_writable)
    to report."""
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    if not db.parent.is_dir():
        return
    try:
        lock = open(f"{db}.lock", "a")  # noqa: SIM115 (closed below)
    except OSError:  # a read-only folder: nothing can be created there anyway
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


class StoreError(ValueError):
    """The store's file cannot be a store; the message names it and what to do."""


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(uri: str) -> None:
    """StoreError if a sqlite:/// URI names a file that is not an SQLite database (MLflow
    would fail deep in SQLAlchemy, naming no file); a warning if the file is empty, which
    SQLite takes for a new database, so MLflow creates a fresh store in it."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return  # a new store, or a problem SQLite names itself
    if not head:
        log.warning("%s is empty (0 bytes): MLflow creates a new, empty store in it; if it "
                    "held runs, they are not in it any more", path)
    elif head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not an SQLite database (corrupt, or another kind of "
                         "file): move it aside, or give another store with --tracking-uri (train: "
                         "tracking.uri=) or MLFLOW_TRACKING_URI")


def run_exists(run_id: str) -> bool:
    """Whether the connected store holds a run with this id (deleted ones too)."""
    try:
        mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def use_store(configured: str | None, experiment: str) -> str:
    """Point MLflow at the store and experiment (created if missing); return its id.

    The experiment is tagged as a model-training one, so that MLflow's UI opens it on its
    runs; experiments created before the tag existed get it the next time they are used.
    """
    open_store(connect(configured))
    found = mlflow.set_experiment(experiment)
    if found.tags.get(tags.EXPERIMENT_KIND) != tags.MODEL_TRAINING:
        mlflow.MlflowClient().set_experiment_tag(
            found.experiment_id, tags.EXPERIMENT_KIND, tags.MODEL_TRAINING)
    return found.experiment_id


# -- can the store be written? -----------------------------------------------------------------


class StoreNotWritableError(RuntimeError):
    """The tracking database or the artifact folder cannot be written."""


def local_path(uri: str) -> Path | None:
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
    db = local_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if db is not None:
        _check_writable(db, "database")
        if db.exists():
            _check_writable(db.parent, "database folder")
    if artifact_location:
        folder = local_path(artifact_location)
        if folder is not None:
            _check_writable(folder, "artifact folder")
