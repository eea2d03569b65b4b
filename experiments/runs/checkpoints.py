"""Where a tracked run keeps its checkpoints, and how it finds them again to resume.

Training saves the state every `trainer.checkpoint_every` epochs to
`checkpoints/<run id>/last.npz` in the working directory and as the run's artifact
`checkpoint/last.npz` (both overwritten); resuming takes the local copy when it is sound,
else the artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow

from cnn import checkpoint as ckpt
from experiments.tracking.offline import OfflineBuffer

log = logging.getLogger(__name__)

CHECKPOINT_DIR = Path("checkpoints")  # checkpoints/<run id>/last.npz, in the working directory
CHECKPOINT_ARTIFACT = "checkpoint"  # the artifact folder holding last.npz


class ResumeError(RuntimeError):
    """The run cannot be resumed; the message says why and what to do."""


def checkpoint_path(run_id: str) -> Path:
    """Where a run's latest checkpoint is kept locally (absolute, so messages name it fully)."""
    return (CHECKPOINT_DIR / run_id / "last.npz").absolute()


def checkpointer(run: Any, run_id: str, buffer: OfflineBuffer) -> list[ckpt.Checkpointer]:
    """A training callback saving the state every trainer.checkpoint_every epochs, locally
    and as the artifact (sent through `buffer`, so an absent server does not stop it)."""
    every = run.cfg.trainer.checkpoint_every
    if not every:
        return []

    def upload(path: Path, epoch: int) -> None:
        buffer.upload(path, CHECKPOINT_ARTIFACT)

    return [ckpt.Checkpointer(checkpoint_path(run_id), run.net, run.optimizer, run.generators,
                              run.steps_per_epoch, every=every, on_saved=upload,
                              average=run.average)]


Check = Callable[[ckpt.Checkpoint, str], None]


def find_checkpoint(run_id: str, folder: Path, check: Check | None = None) -> ckpt.Checkpoint:
    """The run's latest usable checkpoint: the local copy if it reads and passes `check`
    (which raises CheckpointError, given the checkpoint and the copy's name), else the
    artifact, downloaded into `folder`. ResumeError naming both copies and what is wrong
    with each when neither is usable."""
    local = checkpoint_path(run_id)
    artifact = f"runs:/{run_id}/{CHECKPOINT_ARTIFACT}/last.npz"
    problems = []
    if local.is_file():
        try:
            return _usable(ckpt.load(local), str(local), check)
        except ckpt.CheckpointError as e:
            problems.append(f"the local copy: {e}")
            log.warning("%s; trying the run's artifact instead (%s)", e, artifact)
    else:
        problems.append(f"no local copy {local}")
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{CHECKPOINT_ARTIFACT}/last.npz", dst_path=str(folder))
    except Exception as e:
        problems.append(f"no artifact {artifact} ({type(e).__name__})")
        raise ResumeError(
            f"run {run_id} has no usable checkpoint: {'; '.join(problems)}. It saves one "
            f"per epoch only with trainer.checkpoint_every > 0 and after its first epoch; "
            f"train it again with `make rerun RUN_ID={run_id}`") from e
    try:
        return _usable(ckpt.load(path), artifact, check)
    except ckpt.CheckpointError as e:
        # `path` is a temporary download, gone once resuming stops: name the artifact.
        problems.append(f"the artifact: {str(e).replace(str(path), artifact)}")
        raise ResumeError(
            f"run {run_id} has no usable checkpoint, and is left as it was: "
            f"{'; '.join(problems)}. Train it again with `make rerun RUN_ID={run_id}`") from e


def _usable(state: ckpt.Checkpoint, source: str, check: Check | None) -> ckpt.Checkpoint:
    if check is not None:
        check(state, source)
    return state
