"""Continue a KILLED or FAILED run from its last checkpoint, in the same MLflow run.

Training saves a checkpoint every `trainer.checkpoint_every` epochs (default 1) to
`checkpoints/<run id>/last.npz` and as the run's artifact `checkpoint/last.npz`. Resuming
rebuilds the config from the run's logged `config/config.yaml` (as experiments.rerun
does), takes the local checkpoint if there is one, else the artifact, restores the
weights, the optimiser state and every random generator, reopens the same run and trains
from the next epoch, logging with the same step numbers. The run then ends FINISHED
(or FAILED / KILLED again, and can be resumed again). With the same code and data the
metrics equal those of an uninterrupted run, number for number.

A FINISHED run is refused, and so is a RUNNING one unless it is stale (see `make reap`).
Each copy of the checkpoint is checked against the rebuilt run before the run is reopened:
its shapes, optimiser and generator states, that its numbers are finite and that its
epoch is one the run has logged. A copy that fails is passed over for the other; when
both fail, the run is left as it was and the error names both.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import mlflow

from cnn import checkpoint as ckpt
from cnn.rng import make_generators
from experiments.datasets.base import load_splits
from experiments.runs.build import Run, build_run
from experiments.runs.checkpoints import ResumeError, checkpoint_path, find_checkpoint
from experiments.runs.logged import load_logged_config, provenance_warnings
from experiments.runs.tracked import Outcome, train_and_log
from experiments.tracking.offline import OFFLINE_FILE, send_offline_metrics
from experiments.tracking.store import connect

log = logging.getLogger(__name__)

RESUMABLE = ("KILLED", "FAILED")


def resume(run_id: str, tracking_uri: str | None = None, force: bool = False) -> Outcome:
    """Continue `run_id` from its last checkpoint; returns the finished run's outcome."""
    connect(tracking_uri)
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

    unsent = checkpoint_path(run_id).parent / OFFLINE_FILE
    if unsent.is_file():  # kept while the tracking server was away (tracking.offline)
        log.info("sent %d metric values kept in %s", send_offline_metrics(run_id, unsent), unsent)
    cfg = load_logged_config(run_id)
    cfg.tracking.uri = mlflow.get_tracking_uri()
    cfg.tracking.experiment = client.get_experiment(old.info.experiment_id).name
    splits = load_splits(cfg, make_generators(cfg.trainer.seed))
    # A run of its own to check the copies against; train_and_log builds the one it trains.
    check = _fits(build_run(cfg, splits=splits), _logged_epochs(client, run_id))
    with tempfile.TemporaryDirectory() as tmp:
        state = find_checkpoint(run_id, Path(tmp), check)
    if state.epoch >= cfg.trainer.epochs:
        log.info("the checkpoint is from the last epoch (%d): only the evaluation is redone",
                 state.epoch)
    for warning in provenance_warnings(run_id, old.data.tags, splits.digest()):
        log.warning("%s: the resumed epochs may not match an uninterrupted run", warning)
    log.info("resuming run %s (%s) after epoch %d of %d", run_id, status, state.epoch,
             cfg.trainer.epochs)
    return train_and_log(cfg, splits=splits, resume=(run_id, state))


def _logged_epochs(client: mlflow.MlflowClient, run_id: str) -> int:
    """The epochs 1..n whose train_loss the run has logged, every one of them."""
    steps = {m.step for m in client.get_metric_history(run_id, "train_loss")}
    n = 0
    while n + 1 in steps:
        n += 1
    return n


def _fits(run: Run, logged: int):
    """A find_checkpoint check: the checkpoint restores into `run` and continues an epoch
    the run has logged (the figures redraw the epochs before it from the log)."""
    epochs = run.cfg.trainer.epochs

    def check(state: ckpt.Checkpoint, source: str) -> None:
        if not 1 <= state.epoch <= min(epochs, logged):
            raise ckpt.CheckpointError(
                f"{source}: its epoch {state.epoch} is not one of the run's {epochs} that it "
                f"logged (train_loss for epochs 1..{logged})")
        ckpt.check_fits(state, run.net, run.optimizer, run.generators, source=source,
                        average=run.average)

    return check
