"""Where a tracked run keeps its checkpoints, and how it finds them again to resume.

Training saves the state every `trainer.checkpoint_every` epochs to
`checkpoints/<run id>/last.npz` in the working directory and as the run's artifact
`checkpoint/last.npz` (both overwritten); resuming takes the local copy when it is sound,
else the artifact.
"""

from __future__ import annotations

import logging
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


def find_checkpoint(run_id: str, folder: Path) -> ckpt.Checkpoint:
    """The run's latest checkpoint: the local copy if present and sound, else the artifact
    (downloaded into `folder`)."""
    local = checkpoint_path(run_id)
    problems = []
    if local.is_file():
        try:
            return ckpt.load(local)
        except ckpt.CheckpointError as e:
            problems.append(str(e))
            log.warning("%s; trying the run's artifact instead", e)
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{CHECKPOINT_ARTIFACT}/last.npz", dst_path=str(folder))
    except Exception as e:
        problems.append(f"no artifact {CHECKPOINT_ARTIFACT}/last.npz ({type(e).__name__})")
        raise ResumeError(
            f"run {run_id} has no usable checkpoint: {'; '.join(problems)}. It saves one "
            f"per epoch only with trainer.checkpoint_every > 0 and after its first epoch; "
            f"train it again with `make rerun RUN_ID={run_id}`") from e
    try:
        return ckpt.load(path)
    except ckpt.CheckpointError as e:
        # `path` is a temporary download, gone once resuming stops: name the artifact.
        artifact = f"runs:/{run_id}/{CHECKPOINT_ARTIFACT}/last.npz"
        raise ckpt.CheckpointError(str(e).replace(str(path), artifact)) from e
