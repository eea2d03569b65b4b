"""Continue a KILLED or FAILED run from its last checkpoint, in the same MLflow run.

    python -m experiments.resume <run_id>          # or: make resume RUN_ID=<run_id>

Training saves a checkpoint every `trainer.checkpoint_every` epochs (default 1) to
`checkpoints/<run id>/last.npz` and as the run's artifact `checkpoint/last.npz`. Resuming
rebuilds the config from the run's logged `config/config.yaml` (as experiments.rerun
does), takes the local checkpoint if there is one, else the artifact, restores the
weights, the optimiser state and every random generator, reopens the same run and trains
from the next epoch, logging with the same step numbers. The run then ends FINISHED
(or FAILED / KILLED again, and can be resumed again). With the same code and data the
metrics equal those of an uninterrupted run, number for number.

A FINISHED run is refused, and so is a RUNNING one unless it is stale (see `make reap`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow

from cnn import checkpoint as ckpt
from cnn.rng import make_generators
from experiments import tracking
from experiments.pipeline import load_splits
from experiments.rerun import load_logged_config, provenance_warnings
from experiments.train import (
    CHECKPOINT_ARTIFACT,
    Outcome,
    checkpoint_path,
    http_retries_bounded,
    train_and_log,
)

log = logging.getLogger("experiments.resume")

RESUMABLE = ("KILLED", "FAILED")


class ResumeError(RuntimeError):
    """The run cannot be resumed; the message says why and what to do."""


def find_checkpoint(run_id: str, folder: Path) -> ckpt.Checkpoint:
    """The run's latest checkpoint: the local copy if present and sound, else the artifact."""
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
    return ckpt.load(path)


def resume(run_id: str, tracking_uri: str | None = None, force: bool = False) -> Outcome:
    """Continue `run_id` from its last checkpoint; returns the finished run's outcome."""
    mlflow.set_tracking_uri(tracking.resolve_tracking_uri(tracking_uri))
    client = mlflow.MlflowClient()
    try:
        old = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        raise ResumeError(f"no run {run_id} in {mlflow.get_tracking_uri()}") from e
    status = old.info.status
    if status == "FINISHED":
        raise ResumeError(f"run {run_id} is FINISHED: there is nothing to resume "
                          f"(`make rerun RUN_ID={run_id}` trains it again as a new run)")
    if status not in RESUMABLE and not force:
        raise ResumeError(
            f"run {run_id} is {status}: only {' or '.join(RESUMABLE)} runs are resumed. If its "
            f"process is gone, `make reap` marks it KILLED; --force resumes it anyway")

    unsent = checkpoint_path(run_id).parent / tracking.OFFLINE_FILE
    if unsent.is_file():  # kept while the tracking server was away (tracking.OfflineBuffer)
        log.info("sent %d metric values kept in %s", tracking.send_offline_metrics(run_id, unsent),
                 unsent)
    cfg = load_logged_config(run_id)
    cfg.tracking.uri = mlflow.get_tracking_uri()
    cfg.tracking.experiment = client.get_experiment(old.info.experiment_id).name
    with tempfile.TemporaryDirectory() as tmp:
        state = find_checkpoint(run_id, Path(tmp))
    if state.epoch >= cfg.trainer.epochs:
        log.info("the checkpoint is from the last epoch (%d): only the evaluation is redone",
                 state.epoch)
    splits = load_splits(cfg, make_generators(cfg.trainer.seed))
    for warning in provenance_warnings(run_id, old.data.tags, splits.digest()):
        log.warning("%s: the resumed epochs may not match an uninterrupted run", warning)
    log.info("resuming run %s (%s) after epoch %d of %d", run_id, status, state.epoch,
             cfg.trainer.epochs)
    return train_and_log(cfg, splits=splits, resume=(run_id, state))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the KILLED or FAILED MLflow run to continue")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    parser.add_argument("--force", action="store_true",
                        help="resume even a run still marked RUNNING (make sure it is dead)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    http_retries_bounded()
    try:
        outcome = resume(args.run_id, args.tracking_uri, force=args.force)
    except (ResumeError, ckpt.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"run {outcome.run_id} resumed and finished: test_acc {outcome.test_acc:.4f}")


if __name__ == "__main__":
    main()
