"""Callbacks: two for the training loop, one for Hydra's multirun.

Training (`cnn.training.fit(..., callbacks=[...])`):
    MetricsLogger   logs each epoch's metrics to the active MLflow run, step=epoch
    ProgressBar     a tqdm bar over all steps with the epoch's running loss and accuracy
Hydra (`hydra.callbacks` in conf/train.yaml):
    SweepTracking   opens the sweep's parent MLflow run when a multirun starts, and writes
                    the comparison report and closes the parent when it ends
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from experiments import tracking

log = logging.getLogger(__name__)

# Written into the sweep folder by SweepTracking; each job of the sweep reads it to find
# its parent run. A file rather than an environment variable: it belongs to one sweep
# only and stays readable afterwards.
PARENT_RUN_FILE = "mlflow_parent_run.json"


class MetricsLogger:
    """Logs every epoch's metrics with step=epoch (one call per epoch) and keeps them."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append(dict(metrics))
        mlflow.log_metrics(metrics, step=epoch)
        shown = "  ".join(
            f"{k}={v:.4g}" for k, v in metrics.items() if k not in ("epoch_time_s", "images_per_s")
        )
        log.info("epoch %d/%d  %s  (%.1f s, %.0f img/s)", epoch, self.epochs, shown,
                 metrics["epoch_time_s"], metrics["images_per_s"])


class ProgressBar:
    """One tqdm bar over all optimiser steps, showing the running mean loss and accuracy
    of the current epoch."""

    def __init__(self, total_steps: int, epochs: int, desc: str, enabled: bool = True) -> None:
        self.epochs = epochs
        self.bar = tqdm(total=total_steps, desc=desc, unit="step", disable=not enabled,
                        dynamic_ncols=True, leave=True)
        self._reset(epoch=1)

    def _reset(self, epoch: int) -> None:
        self.epoch, self.loss_sum, self.acc_sum, self.batches = epoch, 0.0, 0.0, 0

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        self.loss_sum, self.acc_sum, self.batches = (
            self.loss_sum + loss, self.acc_sum + acc, self.batches + 1)
        self.bar.update(1)
        self.bar.set_postfix_str(
            f"epoch {self.epoch}/{self.epochs} loss {self.loss_sum / self.batches:.4f} "
            f"acc {self.acc_sum / self.batches:.3f}", refresh=False)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._reset(epoch + 1)

    def close(self) -> None:
        self.bar.close()


def read_parent_run(sweep_dir: str | Path) -> dict[str, str] | None:
    """The parent run a sweep's jobs belong to ({"run_id", "sweep"}), if one was opened."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class SweepTracking(Callback):
    """Groups a multirun's jobs under one parent MLflow run and reports on them at the end.

    A job that fails or diverges is recorded as FAILED and the sweep goes on
    (experiments.train catches it). Ctrl-C or SIGTERM stops the whole sweep: the running
    job and the parent end KILLED. If the process ends any other way before the sweep is
    over, the parent is ended FAILED on exit, so it is never left RUNNING.
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.interrupted = False
        self._previous_handlers: dict[int, Any] = {}

    # -- Hydra hooks ---------------------------------------------------------------------------

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_name = OmegaConf.select(config, "hydra.runtime.choices.sweep") or "custom"
        sweep_dir = Path(config.hydra.sweep.dir)
        tracking.use_store(config.tracking.uri, config.tracking.experiment)
        commit, dirty, _ = tracking.git_state()
        # Sweeps given on the command line (-m optim.lr=0.01,0.1) have no sweeper.params;
        # their lists are in the overrides tag instead.
        params_node = OmegaConf.select(config, "hydra.sweeper.params")
        params = {} if params_node is None else OmegaConf.to_container(params_node, resolve=True)
        overrides = list(config.hydra.overrides.task)
        client = mlflow.MlflowClient()
        parent = client.create_run(
            mlflow.get_experiment_by_name(config.tracking.experiment).experiment_id,
            run_name=f"sweep-{sweep_name}-{datetime.now():%Y%m%d-%H%M%S}",
            tags={
                tracking.TAG_SWEEP: sweep_name,
                tracking.TAG_GIT_COMMIT: commit,
                tracking.TAG_GIT_DIRTY: str(dirty).lower(),
                tracking.TAG_OVERRIDES: " ".join(overrides),
                "sweep_dir": str(sweep_dir.resolve()),
                "mlflow.note.content": f"Sweep {sweep_name}: parameters {params}. The child "
                                       "runs are nested below; the comparison report is "
                                       "under the artifacts' report/ folder.",
            },
        )
        self.parent_run_id = parent.info.run_id
        for key, values in params.items():
            client.log_param(self.parent_run_id, f"sweep.{key}", str(values))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_RUN_FILE).write_text(json.dumps({
            "run_id": self.parent_run_id, "sweep": sweep_name,
            "tracking_uri": mlflow.get_tracking_uri()}))
        self._install_signal_handlers()
        atexit.register(self._end_if_still_running)
        log.info("sweep %s: parent MLflow run %s", sweep_name, self.parent_run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is None:
            return
        from experiments.report import write_report  # imported late: pulls in plotting

        client = mlflow.MlflowClient()
        try:
            out_dir = Path(config.hydra.sweep.dir) / "report"
            summary = write_report(self.parent_run_id, out_dir, log_to_parent=True)
            client.set_tag(self.parent_run_id, "jobs", summary)
        except Exception:
            # A broken report must not lose the sweep: the runs are there, and the report
            # can be rebuilt with `python -m experiments.report`.
            log.exception("the comparison report failed; rerun python -m experiments.report")
        finally:
            client.set_terminated(self.parent_run_id, status="FINISHED")
            self._restore_signal_handlers()
            atexit.unregister(self._end_if_still_running)
            self.parent_run_id = None

    # -- never RUNNING ---------------------------------------------------------------------

    def _interrupt(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._interrupt)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _end_if_still_running(self) -> None:
        if self.parent_run_id is None:
            return
        client = mlflow.MlflowClient()
        try:
            if client.get_run(self.parent_run_id).info.status == "RUNNING":
                client.set_terminated(self.parent_run_id,
                                      status="KILLED" if self.interrupted else "FAILED")
        except Exception:
            log.exception("could not end the sweep's parent run %s", self.parent_run_id)
