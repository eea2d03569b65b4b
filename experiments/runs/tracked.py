"""One training run inside an MLflow run: everything about it logged, and the run ended
FINISHED, FAILED or KILLED whatever happens.

`train_and_log` needs no Hydra: the train command calls it with the composed config,
`experiments.runs.rerun` with a config rebuilt from a logged run, and
`experiments.runs.resume` to continue a run in place from its checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from cnn import checkpoint as ckpt
from cnn.data import Splits
from cnn.layers import WeightedLayer
from cnn.rng import make_generators
from cnn.training import EPOCH_METRICS, fit
from experiments.config import validate
from experiments.datasets.base import load_splits
from experiments.reporting import run_figures
from experiments.reporting.gradient_flow import log_gradient_flow
from experiments.reporting.training_diagnosis import log_training_diagnosis
from experiments.runs import callbacks, health
from experiments.runs.build import Run, build_run
from experiments.runs.checkpoints import checkpoint_path, checkpointer
from experiments.runs.interpolation import log_interpolation
from experiments.runs.landscape import log_landscape
from experiments.runs.logged import machine_tags
from experiments.runs.lr_find import at_rate, log_range_test, range_test
from experiments.runs.results import log_datasets, log_test_results
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.blas import this_machine
from experiments.runtime.threads import chunk_threads
from experiments.tracking import disk, tags
from experiments.tracking import swept as swept_names
from experiments.tracking.git import git_state, git_tags
from experiments.tracking.history import epoch_history
from experiments.tracking.lifecycle import ended_run
from experiments.tracking.metadata import log_safely
from experiments.tracking.offline import OFFLINE_FILE, OfflineBuffer, is_tracking_outage
from experiments.tracking.params import flatten
from experiments.tracking.store import (
    check_sqlite_file,
    check_store_writable,
    resolve_tracking_uri,
    use_store,
)

log = logging.getLogger(__name__)



@dataclass
class Outcome:
    """What a finished run produced; `history` has one metrics dict per epoch."""

    run_id: str
    history: list[dict[str, float]] = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None


@dataclass
class SweptValues:
    """A sweep job's value of each key the sweep varies (`mine`, as its override gives it),
    and every value of each key (`all`; [] when a search draws them)."""

    mine: dict[str, str]
    all: dict[str, list[str]]


def default_run_name(cfg: Any, swept: SweptValues | None = None) -> str:
    """A readable name from the choices, e.g. seed-he-lr0.03-n2500-s0, or for families
    with a depth and a norm resnet20-he-... and plain32-nonorm-he-...; in a sweep, followed
    by each swept key the name does not show otherwise: seed-he-lr0.03-n1000-s0-batch_size=32."""
    n = "all" if cfg.data.n_train is None else cfg.data.n_train
    model = f"{cfg.model.name}{cfg.model.get('depth', '')}"
    if cfg.model.get("norm") == "none":
        model += "-nonorm"
    name = f"{model}-{cfg.init.name}-lr{cfg.optim.lr:g}-n{n}-s{cfg.trainer.seed}"
    return name if swept is None else name + swept_names.name_suffix(swept.mine, swept.all)


def train_and_log(
    cfg: DictConfig,
    *,
    run_name: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    hydra_dir: Path | None = None,
    log_file: Path | None = None,
    splits: Splits | None = None,
    resume: tuple[str, ckpt.Checkpoint] | None = None,
    swept: SweptValues | None = None,
) -> Outcome:
    """Train the run `cfg` describes inside a new MLflow run, and log everything about it.

    extra_tags: e.g. the Hydra overrides, rerun_of. parent_run_id: the sweep's parent run.
    With lr_find.apply, the range test runs first and the run trains at its suggestion
    (logged as optim.lr, with the test's figure and metrics). hydra_dir: the job's
    `.hydra/` folder to log. log_file: the job's log. splits: the
    data, if the caller has already loaded it (see build.build_run). The run always ends
    FINISHED, FAILED or KILLED (tracking.lifecycle.ended_run); exceptions, including a
    diverged loss (cnn.training.DivergenceError), propagate after that. resume: (run id,
    checkpoint) to continue that run in place from the checkpoint's next epoch instead of
    starting a new run. Only this run is ended here, never the sweep's parent, which
    its sweep ends (experiments.sweeps.tracking). swept: a sweep job's values of the keys
    the sweep varies, shown in its name and tagged (tags.SWEPT) for the report.
    """
    keep_freed_memory()  # here, not in a command: sweep workers call this function directly
    validate(cfg)  # the one validation of this run: what builds it below is told so
    check_sqlite_file(resolve_tracking_uri(cfg.tracking.uri))  # before the data's load
    if splits is None:
        # Before the run exists: data that cannot be found (or downloaded) fails here,
        # leaving no FAILED run behind. The split seed is drawn as build_run would draw it.
        splits = load_splits(cfg, make_generators(cfg.trainer.seed))
    found = None
    if resume is None and cfg.lr_find.apply:
        # Before the run is named and its params logged, so that both show the rate it
        # trains at; the range test's network is its own (experiments.runs.lr_find).
        found = range_test(cfg, splits)
        log.info("training at the range test's suggestion, %.4g", found.suggestion)
        cfg = at_rate(cfg, found.suggestion)
    check_store_writable(resolve_tracking_uri(cfg.tracking.uri))
    experiment_id = use_store(cfg.tracking.uri, cfg.tracking.experiment)
    check_store_writable(mlflow.get_tracking_uri(),
                         mlflow.get_experiment(experiment_id).artifact_location)
    commit, dirty, diff = git_state()
    name = run_name or cfg.tracking.run_name or default_run_name(cfg, swept)
    all_tags = {**git_tags(commit, dirty), tags.SWEEP: "none", **(extra_tags or {})}
    if swept is not None:
        all_tags[tags.SWEPT] = swept_names.encode(swept.mine)
    if resume is None:
        ended = ended_run.starting(run_name=name, parent_run_id=parent_run_id, tags=all_tags)
    else:  # the same run, RUNNING again; its params and config are already logged
        ended = ended_run.starting(run_id=resume[0],
                                   tags={tags.RESUMED_FROM: str(resume[1].epoch)})
    # Entering it starts the run, with the stop signals already handled (tracking.lifecycle).
    with ended:
        outcome = Outcome(run_id=ended.run_id)
        name = ended.active.info.run_name or name
        try:
            if found is not None:
                log_range_test(found, name)
            # The layers' batch chunks on the cores, from the health checks on.
            with chunk_threads() as threads:
                log_safely("the machine's tags", mlflow.set_tags,
                           {tags.CHUNK_THREADS: str(threads), **machine_tags(this_machine())})
                if resume is None:
                    run = _start(cfg, outcome.run_id, name, hydra_dir, diff if dirty else None,
                                 splits)
                    metrics = callbacks.MetricsLogger(run.epochs)
                    start_epoch = 1
                else:
                    run, metrics = _restore(cfg, outcome.run_id, name, splits, resume[1])
                    start_epoch = resume[1].epoch + 1
                _fit_and_evaluate(run, name, outcome, metrics, start_epoch)
            log_training_diagnosis(outcome.run_id, None, splits.num_classes)
        except Exception as error:  # a stop (KeyboardInterrupt) ends the run at once
            named = _disk_full_named(error, outcome.run_id)
            log_training_diagnosis(outcome.run_id, named, splits.num_classes)
            if named is not error:
                raise named from error
            raise
        finally:
            _log_job_file(log_file, outcome.run_id)
    return outcome


def _start(cfg: DictConfig, run_id: str, name: str, hydra_dir: Path | None,
           diff: str | None, splits: Splits | None) -> Run:
    """Log the config and code state, build the run, log its data and health."""
    container = OmegaConf.to_container(cfg, resolve=True)
    mlflow.log_params(flatten(container))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    if hydra_dir is not None and hydra_dir.is_dir():
        mlflow.log_artifacts(str(hydra_dir), "config/hydra")
    if diff is not None:
        mlflow.log_text(diff, "git_diff.patch")

    run = build_run(cfg, splits=splits, validated=True)
    log_safely("the data digest tag", mlflow.set_tag, tags.DATA_DIGEST, run.splits.digest())
    if cfg.tracking.log_dataset:
        log_datasets(run)
    mlflow.log_text(run.net.summary(print_fn=lambda _: None), "model_summary.txt")
    if cfg.trainer.health_checks:
        health.log_health(run)
    elif cfg.trainer.layer_stats:  # the series still start at step 0, before training
        health.log_initial_statistics(run)
    log.info("run %s (%s): %d training, %d validation, %d test images, %d steps",
             run_id, name, len(run.splits.x_train), len(run.splits.x_val),
             len(run.splits.x_test), run.total_steps)
    return run


def _restore(cfg: DictConfig, run_id: str, name: str, splits: Splits | None,
             state: ckpt.Checkpoint) -> tuple[Run, callbacks.MetricsLogger]:
    """Rebuild the run and put the checkpoint's state into it, to train on from the next
    epoch; the metrics logger starts with the epochs already logged."""
    run = build_run(cfg, splits=splits, validated=True)
    ckpt.restore(state, run.net, run.optimizer, run.generators,
                 source=f"the checkpoint of run {run_id} (epoch {state.epoch})",
                 average=run.average)
    metrics = callbacks.MetricsLogger(run.epochs)
    # The epochs before the checkpoint, as logged, so the figures show the whole run.
    metrics.history = epoch_history(mlflow.MlflowClient(), run_id, EPOCH_METRICS, state.epoch)
    log.info("run %s (%s): resuming after epoch %d of %d", run_id, name, state.epoch,
             run.epochs)
    return run, metrics


def _fit_and_evaluate(run: Run, name: str, outcome: Outcome,
                      metrics: callbacks.MetricsLogger, start_epoch: int) -> None:
    """Train from start_epoch, checkpointing as configured, then test and log the results."""
    buffer = OfflineBuffer(outcome.run_id, checkpoint_path(outcome.run_id).parent / OFFLINE_FILE,
                           wait_s=run.cfg.tracking.offline_wait_s)
    bar = callbacks.ProgressBar(run.total_steps, run.epochs, desc=name,
                                enabled=run.cfg.trainer.progress)
    if start_epoch > 1:
        bar.bar.update((start_epoch - 1) * run.steps_per_epoch)
        bar.on_epoch_end(start_epoch - 1, {})
    noise = callbacks.noise_scale(run.net, buffer) if run.cfg.trainer.noise_scale else None
    try:
        fit(run.net, run.loss_fn, run.optimizer, run.schedule, run.train_batches, run.epochs,
            val_batches=run.val_batches,
            # The sharpness monitor adds its metrics to the epoch's: before the logger.
            callbacks=[*([run.average] if run.average is not None else []),
                       *health.sharpness_monitor(run, buffer, start_epoch),
                       callbacks.KeepTraining(metrics, buffer), bar,
                       *([noise] if noise is not None else []),
                       *health.layer_monitor(run, buffer),
                       *checkpointer(run, outcome.run_id, buffer),
                       *callbacks.from_config(run.cfg)],
            start_epoch=start_epoch)
        buffer.settle()  # waits for an absent tracking server, or raises saying what to do
    finally:
        bar.close()
        if noise is not None:
            noise.close()
        outcome.history = metrics.history
        if not buffer.flush(force=True):  # stopped while the server is away: keep the unsent
            buffer.save_offline()
            log.warning("unsent metrics saved to %s", buffer.offline_path)
        else:  # a diverged or interrupted run still shows how it got there
            if metrics.history:
                mlflow.log_figure(run_figures.learning_curves(metrics.history, name),
                                  "figures/learning_curves.png")
            if run.cfg.trainer.layer_stats:
                layers = [n for n, leaf in run.net.named_leaves()
                          if isinstance(leaf, WeightedLayer)]
                log_gradient_flow(mlflow.MlflowClient(), outcome.run_id, layers, name)
    outcome.test_loss, outcome.test_acc = log_test_results(run, name)
    if run.cfg.trainer.interpolation:
        log_interpolation(run, name)
    if run.cfg.trainer.landscape:
        log_landscape(run, name)


def _log_job_file(log_file: Path | None, run_id: str) -> None:
    """The job's log file as an artifact, unless the tracking server is away."""
    if log_file is None or not log_file.is_file():
        return
    try:
        mlflow.log_artifact(str(log_file))
    except Exception as e:
        if disk.is_disk_full(e):
            raise _disk_full_named(e, run_id) from e
        if not is_tracking_outage(e):
            raise
        log.warning("could not log %s: the tracking server is unreachable", log_file)


def _disk_full_named(error: BaseException, run_id: str) -> BaseException:
    # OSError's "No space left on device" names no file: name the places the run writes.
    return disk.run_disk_full(error, run_id, checkpoint_path(run_id).parent)
