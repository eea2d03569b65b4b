"""Train one network from a Hydra config and record everything about it in MLflow.

    python -m experiments.train                                   # defaults (conf/train.yaml)
    python -m experiments.train model=vgg init=xavier optim.lr=0.05 data.n_train=2500
    python -m experiments.train experiment=seed_subset            # a fixed recipe
    python -m experiments.train sweep=convergence                 # a multirun (make sweep)
    python -m experiments.train --help                            # groups and options

`train_and_log` does the work and needs no Hydra, so `experiments.rerun` calls it with
a config rebuilt from a logged run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import mlflow
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnn import checkpoint as ckpt
from cnn.data import Splits
from cnn.diagnostics import LayerMonitor
from cnn.training import DivergenceError, fit
from experiments import plots, tracking
from experiments.allocator import keep_freed_memory
from experiments.callbacks import MetricsLogger, ProgressBar, read_parent_run
from experiments.config import register_configs, validate
from experiments.diagnose import PROBE_IMAGES
from experiments.pipeline import Run, build_run, evaluate_with_predictions
from experiments.pyfunc_model import log_pyfunc_model
from experiments.threads import chunk_threads

log = logging.getLogger("experiments.train")  # not "__main__" under python -m


@dataclass
class Outcome:
    """What a finished run produced; `history` has one metrics dict per epoch."""

    run_id: str
    history: list[dict[str, float]] = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None


def default_run_name(cfg: Any) -> str:
    """A readable name from the choices, e.g. seed-he-lr0.03-n2500-s0."""
    n = "all" if cfg.data.n_train is None else cfg.data.n_train
    return f"{cfg.model.name}-{cfg.init.name}-lr{cfg.optim.lr:g}-n{n}-s{cfg.trainer.seed}"


def log_datasets(run: Run) -> None:
    """Record the data actually used as MLflow dataset inputs (shown on the run's page)."""
    splits = run.splits
    parts = [("train", splits.x_train, splits.y_train, "training"),
             ("val", splits.x_val, splits.y_val, "validation"),
             ("test", splits.x_test, splits.y_test, "testing")]
    for part, x, y, context in parts:
        if not len(x):
            continue
        with warnings.catch_warnings():
            # MLflow registers the local-folder source type twice and warns that a path
            # "can be interpreted in multiple ways"; both ways are the same class.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
            dataset = mlflow.data.from_numpy(x, targets=y, source=str(splits.source),
                                             name=f"{run.cfg.data.name}-{part}")
        mlflow.log_input(dataset, context=context)


def train_and_log(
    cfg: DictConfig,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    hydra_dir: Path | None = None,
    log_file: Path | None = None,
    splits: Splits | None = None,
    resume: tuple[str, ckpt.Checkpoint] | None = None,
    interrupt_ends_parent: bool = True,
) -> Outcome:
    """Train the run `cfg` describes inside a new MLflow run, and log everything about it.

    tags: extra tags (e.g. the Hydra overrides, rerun_of). parent_run_id: the sweep's
    parent run. hydra_dir: the job's `.hydra/` folder to log. log_file: the job's log.
    splits: the data, if the caller has already loaded it (see pipeline.build_run).
    The run always ends FINISHED, FAILED or KILLED (see tracking.ended_run); exceptions,
    including a diverged loss (cnn.training.DivergenceError), propagate after that.
    resume: (run id, checkpoint) to continue that run in place from the checkpoint's next
    epoch (experiments.resume) instead of starting a new run. interrupt_ends_parent: an
    interruption also ends the parent KILLED (the whole sweep stops); False when it stops
    only this job (a job of hydra/launcher=slurm cancelled or out of time).
    """
    keep_freed_memory()  # here, not in main: sweep workers call this function directly
    validate(cfg)
    tracking.check_store_writable(tracking.resolve_tracking_uri(cfg.tracking.uri))
    experiment_id = tracking.use_store(cfg.tracking.uri, cfg.tracking.experiment)
    tracking.check_store_writable(mlflow.get_tracking_uri(),
                                  mlflow.get_experiment(experiment_id).artifact_location)
    commit, dirty, diff = tracking.git_state()
    name = run_name or cfg.tracking.run_name or default_run_name(cfg)
    all_tags = {tracking.TAG_GIT_COMMIT: commit, tracking.TAG_GIT_DIRTY: str(dirty).lower(),
                tracking.TAG_SWEEP: "none", **(tags or {})}
    if resume is None:
        active = mlflow.start_run(run_name=name, parent_run_id=parent_run_id, tags=all_tags)
    else:  # the same run, RUNNING again; its params and config are already logged
        active = mlflow.start_run(run_id=resume[0])
        name = active.info.run_name or name
        mlflow.set_tag(tracking.TAG_RESUMED_FROM, str(resume[1].epoch))
    # Who trains it, so that experiments.reap can tell a crashed run from a live one.
    mlflow.set_tags({tracking.TAG_HOST: socket.gethostname(), tracking.TAG_PID: str(os.getpid())})
    outcome = Outcome(run_id=active.info.run_id)
    also_end = (parent_run_id,) if parent_run_id and interrupt_ends_parent else ()
    with tracking.ended_run(outcome.run_id, also_end=also_end):
        try:
            _train(cfg, name, outcome, hydra_dir, diff if dirty else None, splits,
                   None if resume is None else resume[1])
        finally:
            if log_file is not None and log_file.is_file():
                try:
                    mlflow.log_artifact(str(log_file))
                except Exception as e:
                    if not tracking.is_tracking_outage(e):
                        raise
                    log.warning("could not log %s: the tracking server is unreachable",
                                log_file)
    return outcome


def _train(cfg: DictConfig, name: str, outcome: Outcome, hydra_dir: Path | None,
           diff: str | None, splits: Splits | None,
           resume: ckpt.Checkpoint | None = None) -> None:
    """The body of a tracked run; `outcome` is filled in as results arrive."""
    if resume is not None:
        _continue(cfg, name, outcome, splits, resume)
        return
    container = OmegaConf.to_container(cfg, resolve=True)
    mlflow.log_params(tracking.flatten(container))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    if hydra_dir is not None and hydra_dir.is_dir():
        mlflow.log_artifacts(str(hydra_dir), "config/hydra")
    if diff is not None:
        mlflow.log_text(diff, "git_diff.patch")

    run = build_run(cfg, splits=splits)
    mlflow.set_tag(tracking.TAG_DATA_DIGEST, run.splits.digest())
    if cfg.tracking.log_dataset:
        log_datasets(run)
    mlflow.log_text(run.net.summary(print_fn=lambda _: None), "model_summary.txt")
    if cfg.trainer.health_checks:
        _log_health(run)
    log.info("run %s (%s): %d training, %d validation, %d test images, %d steps",
             outcome.run_id, name, len(run.splits.x_train), len(run.splits.x_val),
             len(run.splits.x_test), run.total_steps)
    _fit_and_finish(run, name, outcome, MetricsLogger(run.epochs))


def _continue(cfg: DictConfig, name: str, outcome: Outcome, splits: Splits | None,
              state: ckpt.Checkpoint) -> None:
    """Rebuild the run, put the checkpoint's state into it, and train on from the next epoch."""
    run = build_run(cfg, splits=splits)
    ckpt.restore(state, run.net, run.optimizer, run.generators,
                 source=f"the checkpoint of run {outcome.run_id} (epoch {state.epoch})")
    metrics = MetricsLogger(run.epochs)
    # The epochs before the checkpoint, as logged, so the figures show the whole run.
    metrics.history = _logged_history(outcome.run_id, state.epoch)
    log.info("run %s (%s): resuming after epoch %d of %d", outcome.run_id, name,
             state.epoch, run.epochs)
    _fit_and_finish(run, name, outcome, metrics, start_epoch=state.epoch + 1)


def _logged_history(run_id: str, epochs: int) -> list[dict[str, float]]:
    client = mlflow.MlflowClient()
    history: list[dict[str, float]] = [{} for _ in range(epochs)]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s",
                "images_per_s"):
        for m in client.get_metric_history(run_id, key):
            if 1 <= m.step <= epochs:
                history[m.step - 1][key] = m.value
    return history


def _fit_and_finish(run: Run, name: str, outcome: Outcome, metrics: MetricsLogger,
                    start_epoch: int = 1) -> None:
    """Train (from start_epoch), checkpointing every epoch, then evaluate and log the results,
    with the layers' batch chunks spread over the cores (experiments.threads)."""
    with chunk_threads(run.net) as threads:
        mlflow.set_tag("chunk_threads", str(threads))
        _fit_evaluate_log(run, name, outcome, metrics, start_epoch)


def _fit_evaluate_log(run: Run, name: str, outcome: Outcome, metrics: MetricsLogger,
                      start_epoch: int) -> None:
    cfg = run.cfg
    buffer = tracking.OfflineBuffer(
        outcome.run_id, checkpoint_path(outcome.run_id).parent / tracking.OFFLINE_FILE,
        wait_s=cfg.tracking.get("offline_wait_s", 60.0))
    bar = ProgressBar(run.total_steps, run.epochs, desc=name, enabled=cfg.trainer.progress)
    if start_epoch > 1:
        bar.bar.update((start_epoch - 1) * run.steps_per_epoch)
        bar.on_epoch_end(start_epoch - 1, {})
    try:
        outcome.history = fit(run.net, run.loss_fn, run.optimizer, run.schedule,
                              run.train_batches, run.epochs, val_batches=run.val_batches,
                              callbacks=[_KeepTraining(metrics, buffer), bar,
                                         *_layer_monitor(run, buffer),
                                         *_checkpointer(run, outcome.run_id, buffer),
                                         *_fault()],
                              start_epoch=start_epoch)
        buffer.settle()  # waits for an absent tracking server, or raises saying what to do
    finally:
        bar.close()
        outcome.history = metrics.history
        if not buffer.flush(force=True):  # stopped while the server is away: keep the unsent
            buffer.save_offline()
            log.warning("unsent metrics saved to %s", buffer.offline_path)
        elif metrics.history:  # a diverged run still shows how it got there
            mlflow.log_figure(plots.learning_curves(metrics.history, name),
                              "figures/learning_curves.png")

    result = evaluate_with_predictions(run.net, run.loss_fn, run.test_batches)
    outcome.test_loss, outcome.test_acc = result.loss, result.acc
    mlflow.log_metrics({"test_loss": result.loss, "test_acc": result.acc}, step=run.epochs)
    log.info("test loss %.4f, test accuracy %.4f", result.loss, result.acc)

    counts = plots.confusion_matrix(result.labels, result.predictions, run.splits.num_classes)
    mlflow.log_figure(plots.confusion_figure(counts, run.splits.class_names, name),
                      "figures/confusion_matrix.png")
    mlflow.log_figure(
        plots.filters_figure(run.net.layers[0].params["W"], f"{name}: first-layer filters"),
        "figures/first_layer_filters.png")
    mlflow.log_text(OmegaConf.to_yaml({"labels": list(run.splits.class_names),
                                       "counts": counts.tolist()}), "confusion_matrix.yaml")
    _log_weights(run)
    if cfg.tracking.log_model:
        info = log_pyfunc_model(run.net, cfg.model.name, run.normalizer, run.splits.class_names)
        # runs:/<run_id>/model works too; this URI names the model itself.
        mlflow.set_tag("model_uri", info.model_uri)


def _log_health(run: Run) -> None:
    """Diagnose the untrained network and log why it might fail (it trains a copy only)."""
    from experiments.diagnose import diagnose, layer_table

    diagnosis = diagnose(run)
    mlflow.log_text(diagnosis.report + "\n\n" + layer_table(diagnosis.stats) + "\n",
                    "health_report.txt")
    mlflow.set_tags({"health": diagnosis.verdict, "health_cause": diagnosis.cause or "-"})
    # The untrained network's per-layer statistics start the per-epoch series at step 0.
    mlflow.log_metrics({k: v for k, v in diagnosis.stats.items() if k != "loss"}, step=0)
    log.info("%s", diagnosis.report.splitlines()[0])


class _KeepTraining:
    """Runs MetricsLogger so that an unreachable tracking server never stops training:
    the epoch's metrics are then kept by the OfflineBuffer and sent later."""

    def __init__(self, logger: MetricsLogger, buffer: tracking.OfflineBuffer) -> None:
        self.logger, self.buffer = logger, buffer

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.buffer.flush():  # what earlier epochs could not send goes first
            if self.buffer.guard(self.logger.on_epoch_end, epoch, metrics):
                return
            # MetricsLogger kept them in its history before its call failed
        else:
            self.logger.history.append(dict(metrics))
            log.info("epoch %d/%d  train_loss=%.4g (tracking server away: metrics kept)",
                     epoch, self.logger.epochs, metrics["train_loss"])
        self.buffer.add(metrics, epoch)


def _layer_monitor(run: Run, buffer: tracking.OfflineBuffer | None = None) -> list[LayerMonitor]:
    """Per-layer statistics every epoch, logged as e.g. conv1.act_std or relu1.dead_frac at
    step=epoch, so a curve shows when activations explode or units die."""
    if not run.cfg.trainer.layer_stats:
        return []
    x = run.transform(run.splits.x_train[:PROBE_IMAGES])
    y = run.splits.y_train[:PROBE_IMAGES]
    return [LayerMonitor(run.net, run.loss_fn, x, y,
                         on_stats=lambda epoch, stats: buffer.log_metrics(stats, epoch)
                         if buffer is not None else mlflow.log_metrics(stats, step=epoch))]


CHECKPOINT_DIR = Path("checkpoints")  # checkpoints/<run id>/last.npz, in the working directory
CHECKPOINT_ARTIFACT = "checkpoint"  # the artifact folder holding last.npz


def checkpoint_path(run_id: str) -> Path:
    """Where a run's latest checkpoint is kept locally (absolute, so messages name it fully)."""
    return (CHECKPOINT_DIR / run_id / "last.npz").absolute()


def _checkpointer(run: Run, run_id: str,
                  buffer: tracking.OfflineBuffer) -> list[ckpt.Checkpointer]:
    """Saves the training state every trainer.checkpoint_every epochs, locally and as the
    artifact checkpoint/last.npz (overwritten), for experiments.resume."""
    every = run.cfg.trainer.get("checkpoint_every", 1)
    if not every:
        return []

    def upload(path: Path, epoch: int) -> None:
        buffer.upload(path, CHECKPOINT_ARTIFACT)

    return [ckpt.Checkpointer(checkpoint_path(run_id), run.net, run.optimizer, run.generators,
                              run.steps_per_epoch, every=every, on_saved=upload)]


# For tests of interruptions and crashes: "N" raises KeyboardInterrupt (as Ctrl-C would)
# after epoch N and its checkpoint; "N:kill" kills the process with SIGKILL there instead.
FAULT_ENV = "EXPERIMENTS_FAULT_AFTER_EPOCH"


class _Fault:
    def __init__(self, epoch: int, kill: bool) -> None:
        self.epoch, self.kill = epoch, kill

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch != self.epoch:
            return
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt(f"{FAULT_ENV} after epoch {epoch}")


def _fault() -> list[_Fault]:
    value = os.environ.get(FAULT_ENV, "").strip()
    if not value:
        return []
    epoch, _, action = value.partition(":")
    return [_Fault(int(epoch), action == "kill")]


def _log_weights(run: Run) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.npz"
        run.net.save(path)
        mlflow.log_artifact(str(path))


# -- the Hydra app ---------------------------------------------------------------------------


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _app(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    parent = read_parent_run(hc.sweep.dir) if multirun else None
    tags = {tracking.TAG_OVERRIDES: " ".join(hc.overrides.task)}
    if parent is not None:
        tags[tracking.TAG_SWEEP] = parent["sweep"]
    elif multirun:
        tags[tracking.TAG_SWEEP] = hc.runtime.choices.get("sweep") or "custom"
    # A job of hydra/launcher=slurm is a SLURM job of its own: SIGTERM or SIGUSR2 there come
    # from the scheduler (scancel, time limit, preemption) and stop this job, not the sweep.
    slurm_job = multirun and "SlurmLauncher" in str(OmegaConf.select(hc, "launcher._target_"))
    try:
        outcome = train_and_log(
            cfg,
            tags=tags,
            parent_run_id=None if parent is None else parent["run_id"],
            hydra_dir=output_dir / hc.output_subdir if hc.output_subdir else None,
            log_file=output_dir / f"{hc.job.name}.log",
            interrupt_ends_parent=not slurm_job,
        )
    except KeyboardInterrupt as e:
        if not slurm_job:
            raise
        # Its run is already KILLED. Returning lets submitit record the job as done, so the
        # sweep collects the other jobs and writes its report.
        log.warning("SLURM stopped this job (%s); its run is KILLED, the sweep goes on", e)
        return None
    except Exception as e:
        if not multirun:
            raise
        # In a sweep one failed or diverged job must not stop the others, nor the report
        # at the end; the run is already recorded as FAILED with its reason.
        if isinstance(e, DivergenceError):
            log.warning("this job diverged (%s); the sweep goes on", e.reason)
        else:
            log.exception("this job failed; the sweep goes on")
        return None
    return outcome.test_acc


def http_retries_bounded() -> None:
    """Fewer, shorter retries against a tracking server than MLflow's default (several
    minutes per call): training keeps what it cannot send (tracking.OfflineBuffer), so a
    server that is away costs seconds per epoch, not minutes. The variables still win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def main() -> None:
    """Entry point of `python -m experiments.train` (and `make train`)."""
    # MLflow's per-artifact download bars would interleave with the training bar.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    http_retries_bounded()
    register_configs()
    _app()


if __name__ == "__main__":
    main()
