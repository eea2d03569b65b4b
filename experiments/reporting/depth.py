"""The depth study's part of a sweep report (conf/sweep/depth.yaml): runs of families with
a depth (plain, resnet), with and without normalisation.

    accuracy_vs_depth.png   final test accuracy against depth, one line per family x norm
    gradient_flow.png       each convolution's weight-gradient norm, in network order,
                            at initialisation (step 0) and after the first epoch; one
                            panel per family x norm, one line per depth

Gradient norms are read from the per-layer statistics every run logs
("watch.<layer>.grad_norm", tracking.layer_metrics, at step 0 before training, then at
step = epoch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
import numpy as np
from matplotlib.figure import Figure

from experiments.reporting.collect import RunSummary
from experiments.tracking.layer_metrics import layer_of

GRAD_NORM = "grad_norm"
FLOW_STEPS = (0, 1)  # before training, and after the first epoch


@dataclass
class DepthRun:
    """One run of the study: its family, norm and depth, result and gradient norms."""

    name: str
    family: str
    norm: str
    depth: int
    status: str
    test_acc: float | None
    # step -> [(layer, gradient norm)] in network order
    grad_norms: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"{self.family}, norm {self.norm}"


def layer_order(name: str) -> tuple:
    """Sort key of a leaf's name in forward order: the stem, then stage by stage and block
    by block (conv1 before conv2), then the classifier; e.g. "stage2.block3.conv1"."""
    rank = 0 if name.startswith(("conv", "bn")) else 2 if name.startswith("dense") else 1
    return rank, tuple(int(n) for n in re.findall(r"\d+", name))


def is_depth_study(runs: Sequence[RunSummary]) -> bool:
    """Whether a sweep's runs differ in depth, as the depth study's do."""
    return len({r.params.get("model.depth") for r in runs} - {None}) > 1


def collect_depth_runs(runs: Sequence[RunSummary]) -> list[DepthRun]:
    """The runs with a depth, with the main path's gradient norms at FLOW_STEPS.

    Shortcut projections are left out: they are not on the path whose depth is studied.
    """
    client = mlflow.MlflowClient()
    found = []
    for r in runs:
        if "model.depth" not in r.params:
            continue
        run = DepthRun(r.name, r.params.get("model.name", "?"), r.params.get("model.norm", "?"),
                       int(r.params["model.depth"]), r.status, r.test_acc)
        layers = {k: layer for k in r.metric_keys
                  if (layer := layer_of(k, GRAD_NORM)) is not None and "shortcut" not in layer}
        by_step: dict[int, list[tuple[str, float]]] = {s: [] for s in FLOW_STEPS}
        for key in sorted(layers, key=lambda k: layer_order(layers[k])):
            for m in client.get_metric_history(r.run_id, key):
                if m.step in by_step:
                    by_step[m.step].append((layers[key], m.value))
        run.grad_norms = {s: v for s, v in by_step.items() if v}
        found.append(run)
    return found


def _lines(runs: Sequence[DepthRun]) -> list[str]:
    return sorted({r.line for r in runs})


def accuracy_vs_depth_figure(runs: Sequence[DepthRun]) -> Figure:
    """Test accuracy against depth; one line per family x norm (a failed run: no point)."""
    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = fig.subplots()
    for k, line in enumerate(_lines(runs)):
        points = sorted((r.depth, r.test_acc) for r in runs
                        if r.line == line and r.test_acc is not None
                        and r.status == "FINISHED")
        if points:
            ax.plot(*zip(*points, strict=True), "-o" if "resnet" in line else "--s",
                    color=f"C{k}", label=line)
    depths = sorted({r.depth for r in runs})
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.axhline(0.1, color="grey", lw=0.8, ls=":")  # chance for ten classes
    ax.set(xlabel="depth (weighted layers)", ylabel="test accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("final test accuracy against depth (dotted: chance)")
    return fig


def gradient_flow_figure(runs: Sequence[DepthRun]) -> Figure:
    """Per-layer gradient norms (log scale) from input to output: a row per family x norm,
    a column per step (initialisation, after epoch 1), a line per depth."""
    lines, depths = _lines(runs), sorted({r.depth for r in runs})
    fig = Figure(figsize=(10, 2.6 * max(len(lines), 1) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(max(len(lines), 1), len(FLOW_STEPS), squeeze=False,
                                      sharey=True))
    for i, line in enumerate(lines):
        for j, step in enumerate(FLOW_STEPS):
            ax = axes[i, j]
            ax.set_title(f"{line}: {'at initialisation' if step == 0 else f'after epoch {step}'}",
                         fontsize=9)
            for k, depth in enumerate(depths):
                for r in runs:
                    norms = [v for _, v in r.grad_norms.get(step, [])]
                    if r.line != line or r.depth != depth or not norms:
                        continue
                    values = np.asarray(norms, dtype=float)
                    values = np.where(np.isfinite(values) & (values > 0), values, np.nan)
                    # Position from input (0) to output (1), so depths share one axis.
                    where = np.linspace(0, 1, len(values))
                    ax.plot(where, values, "-o", ms=2, lw=1, color=f"C{k}",
                            label=f"depth {depth}")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if i == len(lines) - 1:
                ax.set_xlabel("layer position (input -> output)")
            if j == 0:
                ax.set_ylabel("weight-gradient norm")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle("gradient flow: each convolution's (and the classifier's) gradient norm")
    return fig


def depth_table(runs: Sequence[DepthRun]) -> str:
    """Markdown: test accuracy by family x norm (rows) and depth (columns), and the ratio
    of the first layer's gradient norm to the last one's at initialisation."""
    depths = sorted({r.depth for r in runs})
    head = ["family, norm", *(f"depth {d}" for d in depths)]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for line in _lines(runs):
        cells = []
        for d in depths:
            run = next((r for r in runs if r.line == line and r.depth == d), None)
            if run is None:
                cells.append("")
                continue
            acc = "-" if run.test_acc is None else f"{run.test_acc:.3f}"
            start = [v for _, v in run.grad_norms.get(0, [])]
            ratio = start[0] / start[-1] if len(start) > 1 and start[-1] > 0 else math.nan
            cells.append(f"{acc} ({run.status.lower()}; first/last grad {ratio:.2g})")
        rows.append("| " + " | ".join([line, *cells]) + " |")
    return "## Depth study: test accuracy\n\n" + "\n".join(rows) + "\n"
