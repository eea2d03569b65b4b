"""The learning-rate range test's figure: loss against rate, the suggestion marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from cnn.lr_range import RangeTest


def lr_range_figure(result: RangeTest, title: str = "") -> Figure:
    """Each step's batch loss (faint) and the smoothed loss against the rate (log x axis),
    with a line at the suggested rate."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(result.losses)
    ax.plot(result.lrs[finite], result.losses[finite], color="0.7", lw=0.8, label="batch loss")
    smooth_ok = np.isfinite(result.smoothed)
    ax.plot(result.lrs[smooth_ok], result.smoothed[smooth_ok], color="C0", lw=2,
            label="smoothed loss")
    ax.axvline(result.suggestion, color="C3", ls="--",
               label=f"suggestion {result.suggestion:.3g} ({result.rule})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    if smooth_ok.any():
        # The diverged tail can be orders of magnitude above the rest: cut it off so that
        # the descent, which the suggestion reads, stays readable.
        best = float(np.min(result.smoothed[smooth_ok]))
        top = max(float(result.smoothed[smooth_ok][0]), best) * 1.5
        ax.set_ylim(0.9 * min(best, float(np.min(result.losses[finite]))), top)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    stop = "stopped early: the loss diverged" if result.stopped_early else "all steps run"
    ax.set_title(f"{title + ': ' if title else ''}{len(result.lrs)} steps, {stop}")
    return fig
