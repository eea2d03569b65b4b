"""Gradient flow over one run's training, read back from the per-layer statistics it
logged (cnn.diagnostics.LayerMonitor, named by tracking.layer_metrics:
"watch.<layer>.grad_norm" at step 0 before training and at step = epoch,
"watch.<layer>.update_ratio" at step = epoch):

    figures/gradient_flow.png   two heat maps, layer (input at the top) x epoch, log colour
                                scale: the weight-gradient norm, and the mean
                                update-to-weight ratio of the epoch's steps
    gradient_flow.json          the two matrices behind them, with their layers and steps

Heat maps rather than lines, so that a resnet's 30 or more weighted layers stay readable.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import mlflow
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from experiments.tracking.layer_metrics import layer_metric

STATS = ("grad_norm", "update_ratio")
FIGURE = "figures/gradient_flow.png"
VALUES = "gradient_flow.json"


@dataclass
class Flow:
    """layers (L,) in network order, steps (S,) ascending, and per statistic an (L, S)
    float64 matrix of its logged values, NaN where none was logged."""

    layers: list[str]
    steps: list[int]
    values: dict[str, np.ndarray]


def _restored(value: float) -> float:
    """MLflow stores an infinite metric as the largest float: infinite again here."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def read_flow(client: mlflow.MlflowClient, run_id: str, layers: Sequence[str]) -> Flow:
    """The logged "watch.<layer>.<stat>" series of each layer, as matrices layer x step; a step
    logged twice (a resumed run) keeps the later value, and an infinite value (a diverging
    run) is infinite, not MLflow's stand-in for it."""
    series: dict[tuple[str, str], dict[int, float]] = {}
    for stat in STATS:
        for layer in layers:
            history = client.get_metric_history(run_id, layer_metric(layer, stat))
            series[stat, layer] = {m.step: _restored(m.value)
                                   for m in sorted(history, key=lambda m: m.timestamp)}
    steps = sorted({s for by_step in series.values() for s in by_step})
    values = {}
    for stat in STATS:
        matrix = np.full((len(layers), len(steps)), np.nan)
        for i, layer in enumerate(layers):
            for j, step in enumerate(steps):
                matrix[i, j] = series[stat, layer].get(step, np.nan)
        values[stat] = matrix
    return Flow(list(layers), steps, values)


def as_json(flow: Flow) -> str:
    """gradient_flow.json: {"layers", "steps", "grad_norm": [[...]], "update_ratio": ...},
    a row per layer; null where nothing (or no finite number) was logged."""
    matrices = {stat: [[v if math.isfinite(v) else None for v in row.tolist()]
                       for row in flow.values[stat]] for stat in STATS}
    return json.dumps({"layers": flow.layers, "steps": flow.steps, **matrices})


def _heatmap(fig: Figure, ax, flow: Flow, stat: str, label: str, show_layers: bool) -> None:
    matrix = flow.values[stat]
    shown = np.ma.masked_invalid(np.where(matrix > 0, matrix, np.nan))
    cmap = colormaps["viridis"].with_extremes(bad="lightgrey")  # grey: not logged
    norm = None
    if shown.count():
        low, high = float(shown.min()), float(shown.max())
        norm = LogNorm(low, high) if high > low else LogNorm(low / 2, low * 2)
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)
    fig.colorbar(image, ax=ax, label=f"{label} (log scale)")
    steps = flow.steps
    every = max(1, math.ceil(len(steps) / 15))  # at most ~15 epoch labels
    ax.set_xticks(range(0, len(steps), every), [str(s) for s in steps[::every]])
    ax.set_xlabel("epoch (0: before training)")
    fontsize = 8 if len(flow.layers) <= 30 else 7 if len(flow.layers) <= 60 else 6
    ax.set_yticks(range(len(flow.layers)), flow.layers, fontsize=fontsize)
    ax.tick_params(axis="y", labelleft=show_layers)
    ax.set_title(label, fontsize=10)


def flow_figure(flow: Flow, title: str = "") -> Figure:
    """Weight-gradient norm and update-to-weight ratio per layer (rows, input at the top)
    and epoch (columns), each on a log colour scale; the figure grows with the layers."""
    height = max(3.0, 0.2 * len(flow.layers) + 1.6)
    width = max(9.0, 6.0 + 0.25 * len(flow.steps))
    fig = Figure(figsize=(min(width, 18.0), height), layout="constrained")
    ax_grad, ax_ratio = fig.subplots(1, 2)
    _heatmap(fig, ax_grad, flow, "grad_norm", "weight-gradient norm", show_layers=True)
    _heatmap(fig, ax_ratio, flow, "update_ratio", "update-to-weight ratio", show_layers=False)
    fig.suptitle(f"{title}: gradient flow" if title else "gradient flow")
    return fig


def log_gradient_flow(client: mlflow.MlflowClient, run_id: str, layers: Sequence[str],
                      title: str = "") -> Flow | None:
    """Read the run's per-layer series and log the figure and its values to it; None (and
    nothing logged) when the run logged no per-layer statistics (trainer.layer_stats off)."""
    flow = read_flow(client, run_id, layers)
    if not flow.steps:
        return None
    client.log_text(run_id, as_json(flow), VALUES)
    client.log_figure(run_id, flow_figure(flow, title), FIGURE)
    return flow
