"""A batch-size sweep's gradient noise scale beside the steps each batch size took to reach
a target accuracy (McCandlish et al. 2018): below the noise scale B_noise, doubling the
batch should about halve the steps; above it, the steps stop falling.

    noise_scale.png   left: optimiser steps to the target against the batch size, with
                      B_noise (the median over the sweep's runs) marked; right: each
                      run's grad_noise_scale per epoch, coloured by batch size

The target is the highest accuracy every finished run reached (validation accuracy, or
training accuracy without a validation split), rounded down to a hundredth, so every
batch size has a step count; a run's noise scale is the mean of its finite
grad_noise_scale values up to the epoch it reached the target. Runs need
trainer.noise_scale=true (which logs steps too).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from experiments.reporting.collect import RunSummary

NOISE = "grad_noise_scale"


def batch_size(run: RunSummary) -> int:
    return int(run.params.get("trainer.batch_size", "128"))


def sweeps_batch_size(runs: Sequence[RunSummary]) -> bool:
    """Whether the runs logged the noise scale at two batch sizes or more."""
    measured = [r for r in runs if NOISE in r.curves and "steps" in r.curves]
    return len({batch_size(r) for r in measured}) > 1


def accuracy_key(runs: Sequence[RunSummary]) -> str:
    return "val_acc" if any("val_acc" in r.curves for r in runs) else "train_acc"


def target_accuracy(runs: Sequence[RunSummary], key: str) -> float:
    """The highest accuracy every finished run reached, rounded down to 0.01."""
    best = [max(r.curves[key]) for r in runs if r.status == "FINISHED" and r.curves.get(key)]
    return math.floor(100 * min(best, default=0.0)) / 100


@dataclass
class AtTarget:
    """One run at the target: the steps it took (None if never) and its noise scale."""

    run: RunSummary
    batch: int
    steps: float | None
    noise: float


def at_target(run: RunSummary, key: str, target: float) -> AtTarget:
    accuracy, steps = run.curves.get(key, []), run.curves.get("steps", [])
    reached = next((e for e, a in enumerate(accuracy) if a >= target), None)
    upto = len(accuracy) if reached is None else reached + 1
    noise = [v for v in run.curves.get(NOISE, [])[:upto] if math.isfinite(v)]
    return AtTarget(run, batch_size(run),
                    steps[reached] if reached is not None and reached < len(steps) else None,
                    float(np.mean(noise)) if noise else math.nan)


def by_batch(runs: Sequence[RunSummary], key: str, target: float) -> dict[int, list[AtTarget]]:
    found: dict[int, list[AtTarget]] = defaultdict(list)
    for run in runs:
        if NOISE in run.curves:
            found[batch_size(run)].append(at_target(run, key, target))
    return dict(sorted(found.items()))


def noise_scale_section(runs: Sequence[RunSummary]) -> str:
    """Markdown: per batch size, the mean steps to the target and the mean noise scale."""
    key = accuracy_key(runs)
    target = target_accuracy(runs, key)
    lines = ["## Gradient noise scale and steps to a target accuracy", "",
             f"Target: {key} {target:.2f}, the highest every finished run reached. Noise "
             "scale: each run's mean grad_noise_scale up to that epoch (tr(Sigma)/|G|^2, "
             "McCandlish et al. 2018); below it, a larger batch needs fewer steps.", "",
             "| batch size | runs | steps to target | noise scale |", "|---|---|---|---|"]
    for batch, found in by_batch(runs, key, target).items():
        steps = [f.steps for f in found if f.steps is not None]
        noise = [f.noise for f in found if math.isfinite(f.noise)]
        lines.append(f"| {batch} | {len(found)} | "
                     + (f"{np.mean(steps):.0f}" if steps else "not reached") + " | "
                     + (f"{np.mean(noise):.4g}" if noise else "n/a") + " |")
    return "\n".join([*lines, ""])


def noise_scale_figure(runs: Sequence[RunSummary]) -> Figure:
    """Steps to the target against batch size, and the noise scale per epoch."""
    key = accuracy_key(runs)
    target = target_accuracy(runs, key)
    found = by_batch(runs, key, target)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_steps, ax_noise = fig.subplots(1, 2)
    for batch, runs_here in found.items():
        steps = [f.steps for f in runs_here if f.steps is not None]
        ax_steps.plot([batch] * len(steps), steps, "o", color="C0", alpha=0.5, ms=4)
    means = {b: np.mean(s) for b, fs in found.items()
             if (s := [f.steps for f in fs if f.steps is not None])}
    ax_steps.plot(list(means), list(means.values()), "-D", color="C0", ms=5,
                  label="mean over seeds")
    noise = [f.noise for fs in found.values() for f in fs if math.isfinite(f.noise)]
    if noise:
        ax_steps.axvline(float(np.median(noise)), color="C3", ls="--", lw=1,
                         label=f"noise scale (median) {np.median(noise):.3g}")
    ax_steps.set_xscale("log", base=2)
    ax_steps.set_xticks(list(found), [str(b) for b in found])  # the batch sizes, not 2^k
    ax_steps.minorticks_off()
    ax_steps.set_yscale("log")
    ax_steps.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 20, 50, 100, ...
    ax_steps.yaxis.set_major_formatter(ScalarFormatter())
    ax_steps.yaxis.set_minor_formatter(NullFormatter())
    ax_steps.set_xlabel("batch size")
    ax_steps.set_ylabel(f"optimiser steps to {key} {target:.2f}")
    ax_steps.legend(fontsize=8)
    colours = dict(zip(found, [f"C{k % 10}" for k in range(len(found))], strict=True))
    for batch, runs_here in found.items():
        for k, f in enumerate(runs_here):
            values = f.run.curves[NOISE]
            ax_noise.plot(range(1, len(values) + 1), values, "-o", ms=3, color=colours[batch],
                          label=f"batch {batch}" if k == 0 else None)
    ax_noise.set_yscale("log")
    ax_noise.set_xlabel("epoch")
    ax_noise.set_ylabel("gradient noise scale tr(Sigma)/|G|^2")
    ax_noise.legend(fontsize=8)
    for ax in (ax_steps, ax_noise):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("steps to a target accuracy and the gradient noise scale, by batch size")
    return fig
