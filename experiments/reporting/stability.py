"""The Edge of Stability in a sweep's report: for each run that measured its sharpness
(trainer.sharpness_every; conf/sweep/stability.yaml), the sharpness against the stability
threshold 2/lr its optimiser sets, with the training loss beside it.

Cohen et al. (ICLR 2021) found that full-batch gradient descent raises the sharpness until
it reaches 2/lr and then holds it there while the loss falls, unevenly: a run whose
sharpness sits at its threshold is at the Edge of Stability, one far below it is stable.

    stability.png   one panel per run: sharpness (log scale) and its threshold against the
                    step, the training loss on the right axis
    summary.md      a table: each run's sharpness at the start, its largest, its mean over
                    the last third of training, and the threshold
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mlflow
import numpy as np
from matplotlib.figure import Figure

from experiments.reporting.collect import RunSummary
from experiments.reporting.panels import panel_figure
from experiments.reporting.training_diagnosis import logged_series


@dataclass
class SharpnessRun:
    """One run's measured sharpness and threshold, by step (epoch; 0 before training)."""

    run: RunSummary
    sharpness: dict[int, float]
    threshold: dict[int, float]

    @property
    def start(self) -> float:
        return self.sharpness[min(self.sharpness)]

    @property
    def largest(self) -> float:
        return max(self.sharpness.values())

    @property
    def last_third(self) -> float:
        """The mean sharpness over the last third of the steps measured."""
        last = max(self.sharpness)
        kept = [v for step, v in self.sharpness.items() if step >= last * 2 / 3]
        return float(np.mean(kept))

    @property
    def limit(self) -> float:
        """The threshold at the end (constant for a constant rate)."""
        return self.threshold[max(self.threshold)] if self.threshold else math.nan


def sharpness_runs(runs: Sequence[RunSummary]) -> list[SharpnessRun]:
    """The runs that logged a sharpness, in order of their learning rate."""
    client = mlflow.MlflowClient()
    found = []
    for r in sorted(runs, key=lambda r: r.lr):
        if "sharpness" in r.metric_keys:
            series = logged_series(client, r.run_id, ["sharpness", "sharpness_threshold"])
            found.append(SharpnessRun(r, series["sharpness"], series["sharpness_threshold"]))
    return found


def stability_figure(runs: Sequence[SharpnessRun]) -> Figure:
    fig, axes = panel_figure(len(runs), 4, sharey=False, legend_width=0.0)
    for ax, s in zip(axes, runs, strict=True):
        steps = sorted(s.sharpness)
        ax.plot(steps, [s.sharpness[k] for k in steps], "-o", ms=3, color="C3",
                label="sharpness")
        if s.threshold:
            ax.axhline(s.limit, color="grey", ls="--", label=f"2/lr = {s.limit:.3g}")
        ax.set_yscale("log")
        ax.set_xlabel("step (full-batch: one per epoch)")
        ax.set_ylabel("top Hessian eigenvalue")
        ax.set_title(f"lr {s.run.lr:g}", fontsize=9)
        ax.grid(alpha=0.3)
        loss = s.run.curves.get("train_loss", [])
        if loss:
            right = ax.twinx()
            right.plot(range(1, len(loss) + 1), loss, color="C0", lw=0.8, alpha=0.7)
            right.set_yscale("log")
            right.set_ylabel("training loss", color="C0")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("sharpness against the stability threshold 2/lr (blue: training loss)",
                 fontsize=10)
    return fig


def stability_section(runs: Sequence[SharpnessRun]) -> str:
    lines = ["## Sharpness and the stability threshold", "",
             "The top eigenvalue of the training loss's Hessian (cnn.diagnostics.sharpness), "
             "measured before training and every trainer.sharpness_every steps; gradient "
             "descent is stable below its threshold (2/lr without momentum).", "",
             "| run | lr | at the start | largest | mean over the last third | threshold | "
             "last third / threshold |", "|---|---|---|---|---|---|---|"]
    for s in runs:
        lines.append(f"| {s.run.name} | {s.run.lr:g} | {s.start:.4g} | {s.largest:.4g} "
                     f"| {s.last_third:.4g} | {s.limit:.4g} | {s.last_third / s.limit:.2f} |")
    return "\n".join([*lines, ""])
