"""The loss on a plane through a run's trained weights, along two filter-normalised random
directions (trainer.landscape=true; cnn.diagnostics.landscape), logged after training:

    figures/loss_landscape.png   contours of the training loss over the grid
    loss_landscape.json          the values behind it: alphas, betas, the loss and
                                 accuracy grids (loss[i][j] at alphas[i], betas[j]), the
                                 directions' seed, the images, the time it took (wall
                                 and CPU seconds: on a shared machine the CPU time over
                                 the cores used says what it would take alone)

The grid is trainer.landscape_points x trainer.landscape_points over
[-trainer.landscape_span, trainer.landscape_span]^2, on trainer.landscape_images training
images (the ones trainer.interpolation draws: np.random.default_rng(trainer.seed), not
augmented), with the run's own loss, in eval mode with the trained batch-norm statistics,
in batches of trainer.eval_batch_size. The directions are drawn from
np.random.default_rng(trainer.landscape_seed).
"""

from __future__ import annotations

import json
import logging
import math
import time

import mlflow
import numpy as np

from cnn.diagnostics.landscape import Landscape, grid_axis, loss_landscape, random_directions
from experiments.reporting.run_figures import landscape_figure
from experiments.runs.build import Run
from experiments.runs.interpolation import train_subset

log = logging.getLogger(__name__)

FIGURE = "figures/loss_landscape.png"
VALUES = "loss_landscape.json"


def landscape_of_run(run: Run) -> Landscape:
    """The grid of the run's trained network on its landscape images."""
    trainer = run.cfg.trainer
    batches = list(train_subset(run, images=trainer.landscape_images))
    x = np.concatenate([b[0] for b in batches])  # (N, H, W, C) float32, transformed
    y = np.concatenate([b[1] for b in batches])  # (N,)
    axis = grid_axis(trainer.landscape_points, trainer.landscape_span)
    found = loss_landscape(run.net, run.loss_fn, x, y,
                           random_directions(run.net, trainer.landscape_seed), axis, axis,
                           batch_size=trainer.eval_batch_size)
    found.seed = trainer.landscape_seed
    return found


def _finite(grid: np.ndarray) -> list[list[float | None]]:
    """JSON has no NaN or infinity: a loss that overflowed far out is null."""
    return [[float(v) if math.isfinite(v) else None for v in row] for row in grid]


def as_json(found: Landscape, seconds: float, cpu_seconds: float) -> str:
    """The values behind the figure, as loss_landscape.json holds them."""
    return json.dumps({
        "alphas": found.alphas.tolist(),
        "betas": found.betas.tolist(),
        "loss": _finite(found.loss),
        "acc": _finite(found.acc),
        "seed": found.seed,
        "train_images": found.images,
        "batch_norm": "eval mode, the trained running statistics",
        "directions": "filter-normalised; biases and batch-norm parameters zero",
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
    })


def log_landscape(run: Run, name: str) -> Landscape:
    """Evaluate the grid and log the figure and its values to the active run."""
    started, cpu_started = time.perf_counter(), time.process_time()
    found = landscape_of_run(run)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    mlflow.log_text(as_json(found, seconds, cpu), VALUES)
    mlflow.log_figure(landscape_figure(found.alphas, found.betas, found.loss,
                                       f"{name}: training loss around the trained weights"),
                      FIGURE)
    points = found.loss.size
    log.info("loss landscape: %d points on %d images in %.0f s (%.2f s a point, %.0f CPU "
             "seconds); loss at the trained weights %.4g", points, found.images, seconds,
             seconds / points, cpu,
             found.at(0.0, 0.0) if 0.0 in found.alphas else float("nan"))
    return found
