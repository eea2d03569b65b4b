"""A full disk named: which files could not be written, the room left where they go, and
what to do. A write that fails for want of space raises `OSError: [Errno 28] No space left
on device` with no file name (the file was opened; its write failed), and SQLite says only
"database or disk is full"; the harness's callers turn either into DiskFullError.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import mlflow

from experiments.tracking.store import local_path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no room on the device; the user's quota used


class DiskFullError(OSError):
    """There was no room to write; the message names where, its free space and what to do."""


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` is a write that failed for want of space (not yet named here)."""
    if isinstance(error, DiskFullError):
        return False
    if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
        return True
    return "database or disk is full" in str(error)  # SQLite's, through SQLAlchemy


def free_space(path: str | Path) -> str:
    """The room left on the file system `path` is on (or would be, once created)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = float(shutil.disk_usage(probe).free)
    except OSError:
        return "free space unknown"
    if free < 1000:
        return f"{free:.0f} bytes free"
    for unit in ("KB", "MB", "GB", "TB"):
        free /= 1000
        if free < 1000 or unit == "TB":
            break
    return f"{free:.1f} {unit} free"


def disk_full_error(error: BaseException, what: str, places: Sequence[str | Path],
                    todo: str) -> DiskFullError:
    """DiskFullError for `error`: no room for `what`, naming each place written (the
    error's own file first, if it has one) with its free space, and what to do."""
    named = [str(p) for p in [getattr(error, "filename", None), *places] if p]
    listed = "; ".join(f"{p} ({free_space(p)})" for p in dict.fromkeys(named))
    return DiskFullError(f"no space left on the device for {what}: {listed}. {todo}")


@contextlib.contextmanager
def naming_full_disk(what: str, places: Sequence[str | Path], todo: str) -> Iterator[None]:
    """Turn a write that fails for want of space in the block into DiskFullError."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise disk_full_error(e, what, places, todo) from e


def run_disk_full(error: BaseException, run_id: str, checkpoint_dir: Path) -> BaseException:
    """`error` as DiskFullError naming every place run `run_id` writes on this machine (its
    artifact folder if local, its checkpoints, MLflow's staging folder TMPDIR, the SQLite
    database) with the room left on each, if it is a full disk; else `error` itself."""
    if not is_disk_full(error):
        return error
    places = [artifact_place(run_id, ""), checkpoint_dir, tempfile.gettempdir()]
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        places.append(local_path(mlflow.get_tracking_uri()))
    return disk_full_error(
        error, f"the files of run {run_id}", places,
        f"Free space there (or set TMPDIR to a folder with room), then `make resume "
        f"RUN_ID={run_id}` continues it from its last checkpoint.")


def artifact_place(run_id: str, artifact_path: str) -> str:
    """Where `artifact_path` of the run is stored: a folder here, or else its URI."""
    try:
        uri = mlflow.MlflowClient().get_run(run_id).info.artifact_uri
    except Exception:  # naming the place must not hide the full disk
        return f"runs:/{run_id}/{artifact_path}"
    folder = local_path(uri)
    if folder is None:
        return f"{uri.rstrip('/')}/{artifact_path}"
    return str(folder / artifact_path) if artifact_path else str(folder)
