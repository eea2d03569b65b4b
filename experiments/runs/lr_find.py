"""The learning-rate range test of a configured run (`make lr-find`), and the rate it
suggests for training (`lr_find.apply=true`).

The test builds the configured network afresh (the configured init, the run's seeded
random streams, on a network of its own), so the weights a run then trains are never
touched by it; cnn.lr_range does the training maths. The rule behind the suggestion is
`lr_find.rule`: by default a tenth of the rate at the smoothed loss's minimum.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from cnn.data import Splits
from cnn.lr_range import RangeTest, lr_range_test
from cnn.rng import make_generators
from experiments.config import validate
from experiments.datasets.base import load_splits
from experiments.reporting.lr_range import lr_range_figure
from experiments.runs.build import build_run
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.threads import chunk_threads
from experiments.tracking import tags
from experiments.tracking.git import git_state, git_tags
from experiments.tracking.lifecycle import ended_run
from experiments.tracking.params import flatten
from experiments.tracking.store import use_store

log = logging.getLogger(__name__)


def range_test(cfg: Any, splits: Splits | None = None) -> RangeTest:
    """Run the range test `cfg.lr_find` describes on a fresh copy of the configured run;
    `cfg` is validated (its callers do that before their MLflow runs exist)."""
    run = build_run(cfg, splits=splits, validated=True)
    f = cfg.lr_find
    with chunk_threads():
        return lr_range_test(run.net, run.loss_fn, run.optimizer, run.train_batches,
                             min_lr=f.min_lr, max_lr=f.max_lr, steps=f.steps, beta=f.beta,
                             diverge_factor=f.diverge_factor, rule=f.rule)


def at_rate(cfg: DictConfig, lr: float) -> DictConfig:
    """A copy of `cfg` that trains at `lr` (optim.lr)."""
    copy = cfg.copy()
    OmegaConf.set_readonly(copy, False)
    OmegaConf.update(copy, "optim.lr", float(lr))
    return copy


def log_range_test(result: RangeTest, title: str = "") -> None:
    """Log the test into the active run: the figure, every step as a CSV, the suggestion."""
    mlflow.log_figure(lr_range_figure(result, title), "lr_find/lr_range_test.png")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed,
                                               strict=True)):
        writer.writerow([i, f"{lr:.6g}", f"{loss:.6g}", f"{smooth:.6g}"])
    mlflow.log_text(out.getvalue(), "lr_find/lr_range_test.csv")
    mlflow.log_metrics({tags.LR_FIND_SUGGESTION: result.suggestion,
                        "lr_find_best_loss": result.best_loss,
                        "lr_find_steps": float(len(result.lrs))})
    mlflow.set_tags({tags.LR_FIND_SUGGESTION: f"{result.suggestion:.4g}",
                     tags.LR_FIND_STOPPED: tags.flag(result.stopped_early)})


def find_and_log(cfg: DictConfig) -> tuple[RangeTest, str]:
    """Run the range test inside an MLflow run of its own (ended FINISHED, FAILED or
    KILLED); return the result and the run's id. A diverging loss ends the test early,
    as it is meant to, and the run still ends FINISHED."""
    keep_freed_memory()
    validate(cfg)
    splits = load_splits(cfg, make_generators(cfg.trainer.seed))  # before the run exists
    use_store(cfg.tracking.uri, cfg.tracking.experiment)
    commit, dirty, _ = git_state()
    n = "all" if cfg.data.n_train is None else cfg.data.n_train
    name = f"lr-find-{cfg.model.name}-{cfg.init.name}-n{n}-s{cfg.trainer.seed}"
    with ended_run.starting(run_name=name, tags={**git_tags(commit, dirty),
                                                 tags.SWEEP: "none", tags.LR_FIND: "true"}
                            ) as ended:
        mlflow.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
        result = range_test(cfg, splits)
        log_range_test(result, name)
        log.info("range test: %d steps%s, suggested rate %.4g (%s)", len(result.lrs),
                 " (stopped early: the loss diverged)" if result.stopped_early else "",
                 result.suggestion, result.rule)
    return result, ended.run_id
