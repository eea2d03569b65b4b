"""The loss along the straight line from a run's initial weights to its trained ones
(trainer.interpolation=true; cnn.diagnostics.interpolation), logged with the run:

    figures/loss_interpolation.png   train and test loss (and accuracy) against alpha
    loss_interpolation.json          the values behind it: alphas, losses, accuracies

The initial weights are rebuilt from the config (build_run draws them from the run's
seeded init stream), so a resumed run has them too. Losses are taken in eval mode, with
the run's own loss (label smoothing included): on trainer.interpolation_images training
images drawn once with np.random.default_rng(trainer.seed), not augmented, and on the
whole test set, so with trainer.interpolation_bn=blend (batch-norm statistics blended
like the weights) the test loss at alpha = 1 is the run's test_loss. With recompute,
they are estimated at every alpha from the same training images, in batches of
trainer.batch_size (the size their statistics had in training).
"""

from __future__ import annotations

import json
import logging
import math

import mlflow
import numpy as np

from cnn.data import BatchIterator
from cnn.diagnostics.interpolation import LineLosses, line_alphas, loss_along_line
from cnn.layers import BatchNorm1D
from experiments.reporting.run_figures import interpolation_figure
from experiments.runs.build import Run, build_run

log = logging.getLogger(__name__)

FIGURE = "figures/loss_interpolation.png"
VALUES = "loss_interpolation.json"


def train_subset(run: Run, batch_size: int | None = None,
                 images: int | None = None) -> BatchIterator:
    """`images` (default trainer.interpolation_images) training images (all if fewer),
    drawn without replacement by np.random.default_rng(trainer.seed), kept in index order;
    batches of batch_size (default trainer.eval_batch_size)."""
    x, y = run.splits.x_train, run.splits.y_train
    n = min(run.cfg.trainer.interpolation_images if images is None else images, len(x))
    rng = np.random.default_rng(run.cfg.trainer.seed)
    index = np.sort(rng.choice(len(x), size=n, replace=False))
    return BatchIterator(x[index], y[index], batch_size or run.cfg.trainer.eval_batch_size,
                         transform=run.transform)


def interpolate_run(run: Run) -> LineLosses:
    """The train-subset and test losses along the line from the run's initial weights
    (rebuilt from its config) to its current ones."""
    theta0 = build_run(run.cfg, splits=run.splits, validated=True).net.state_dict()
    trainer = run.cfg.trainer
    recompute_from = None
    if trainer.interpolation_bn == "recompute":
        recompute_from = train_subset(run, trainer.batch_size)
    return loss_along_line(run.net, run.loss_fn, theta0, run.net.state_dict(),
                           line_alphas(trainer.interpolation_points, trainer.interpolation_margin),
                           {"train": train_subset(run), "test": run.test_batches},
                           recompute_from)


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN or infinity: a loss that overflowed far from both ends is null."""
    return [float(v) if math.isfinite(v) else None for v in values]


def as_json(line: LineLosses, train_images: int, batch_norm: str) -> str:
    """The values behind the figure, as loss_interpolation.json holds them."""
    return json.dumps({
        "alphas": line.alphas.tolist(),
        "train_loss": _finite(line.loss["train"]),
        "test_loss": _finite(line.loss["test"]),
        "train_acc": _finite(line.acc["train"]),
        "test_acc": _finite(line.acc["test"]),
        "train_images": train_images,
        "batch_norm": batch_norm,
    }, indent=1)


def log_interpolation(run: Run, name: str) -> LineLosses:
    """Evaluate along the line and log the figure and its values to the active run."""
    line = interpolate_run(run)
    images = min(run.cfg.trainer.interpolation_images, len(run.splits.x_train))
    mlflow.log_text(as_json(line, images, run.cfg.trainer.interpolation_bn), VALUES)
    title = f"{name}: loss from initial (0) to trained (1)"
    if any(isinstance(leaf, BatchNorm1D) for _, leaf in run.net.named_leaves()):
        title += f", batch-norm statistics: {run.cfg.trainer.interpolation_bn}"
    mlflow.log_figure(interpolation_figure(line.alphas, line.loss, line.acc, title), FIGURE)
    log.info("loss along the line from initial to trained weights: train %.4g -> %.4g, "
             "test %.4g -> %.4g", line.at(0.0, "train"), line.at(1.0, "train"),
             line.at(0.0, "test"), line.at(1.0, "test"))
    return line
