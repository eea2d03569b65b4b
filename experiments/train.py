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

from cnn.data import Splits
from cnn.diagnostics import LayerMonitor
from cnn.training import DivergenceError, fit
from experiments import plots, tracking
from experiments.callbacks import MetricsLogger, ProgressBar, read_parent_run
from experiments.config import register_configs, validate
from experiments.diagnose import PROBE_IMAGES
from experiments.pipeline import Run, build_run, evaluate_with_predictions
from experiments.pyfunc_model import log_pyfunc_model

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
                                             name=f"cifar10-{part}")
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
) -> Outcome:
    """Train the run `cfg` describes inside a new MLflow run, and log everything about it.

    tags: extra tags (e.g. the Hydra overrides, rerun_of). parent_run_id: the sweep's
    parent run. hydra_dir: the job's `.hydra/` folder to log. log_file: the job's log.
    splits: the data, if the caller has already loaded it (see pipeline.build_run).
    The run always ends FINISHED, FAILED or KILLED (see tracking.ended_run); exceptions,
    including a diverged loss (cnn.training.DivergenceError), propagate after that.
    """
    validate(cfg)
    tracking.use_store(cfg.tracking.uri, cfg.tracking.experiment)
    commit, dirty, diff = tracking.git_state()
    name = run_name or cfg.tracking.run_name or default_run_name(cfg)
    all_tags = {tracking.TAG_GIT_COMMIT: commit, tracking.TAG_GIT_DIRTY: str(dirty).lower(),
                tracking.TAG_SWEEP: "none", **(tags or {})}
    active = mlflow.start_run(run_name=name, parent_run_id=parent_run_id, tags=all_tags)
    outcome = Outcome(run_id=active.info.run_id)
    also_end = (parent_run_id,) if parent_run_id else ()
    with tracking.ended_run(outcome.run_id, also_end=also_end):
        try:
            _train(cfg, name, outcome, hydra_dir, diff if dirty else None, splits)
        finally:
            if log_file is not None and log_file.is_file():
                mlflow.log_artifact(str(log_file))
    return outcome


def _train(cfg: DictConfig, name: str, outcome: Outcome, hydra_dir: Path | None,
           diff: str | None, splits: Splits | None) -> None:
    """The body of a tracked run; `outcome` is filled in as results arrive."""
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

    metrics = MetricsLogger(run.epochs)
    bar = ProgressBar(run.total_steps, run.epochs, desc=name, enabled=cfg.trainer.progress)
    try:
        outcome.history = fit(run.net, run.loss_fn, run.optimizer, run.schedule,
                              run.train_batches, run.epochs, val_batches=run.val_batches,
                              callbacks=[metrics, bar, *_layer_monitor(run)])
    finally:
        bar.close()
        outcome.history = metrics.history
        if metrics.history:  # a diverged run still shows how it got there
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


def _layer_monitor(run: Run) -> list[LayerMonitor]:
    """Per-layer statistics every epoch, logged as e.g. conv1.act_std or relu1.dead_frac at
    step=epoch, so a curve shows when activations explode or units die."""
    if not run.cfg.trainer.layer_stats:
        return []
    x = run.transform(run.splits.x_train[:PROBE_IMAGES])
    y = run.splits.y_train[:PROBE_IMAGES]
    return [LayerMonitor(run.net, run.loss_fn, x, y,
                         on_stats=lambda epoch, stats: mlflow.log_metrics(stats, step=epoch))]


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
    try:
        outcome = train_and_log(
            cfg,
            tags=tags,
            parent_run_id=None if parent is None else parent["run_id"],
            hydra_dir=output_dir / hc.output_subdir if hc.output_subdir else None,
            log_file=output_dir / f"{hc.job.name}.log",
        )
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


def main() -> None:
    """Entry point of `python -m experiments.train` (and `make train`)."""
    # MLflow's per-artifact download bars would interleave with the training bar.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    register_configs()
    _app()


if __name__ == "__main__":
    main()
