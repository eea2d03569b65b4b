"""A sweep's comparison figures: learning curves per (initialisation, learning rate), and
final test accuracy against training-set size."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.reporting.collect import RunSummary, extra_keys
from experiments.tracking import swept


def _ordered(values: Sequence) -> list:
    """Distinct values in first-seen order (the sweep's own order for names)."""
    return list(dict.fromkeys(values))


def curves_figure(runs: Sequence[RunSummary], metric: str, ylabel: str, log_y: bool) -> Figure:
    """One panel per (initialisation, learning rate); one colour per training-set size and
    value of the other keys the sweep varies (batch size, optimiser, ...; the seed aside)."""
    inits = _ordered(r.init for r in runs)
    lrs = sorted(_ordered(r.lr for r in runs))
    extra = extra_keys(runs, swept.FIGURE_KEYS)

    def line_label(r: RunSummary) -> str:
        return ", ".join([f"n={r.n_train}", *filter(None, [swept.label(r.swept, extra)])])

    ordered = sorted(runs, key=lambda r: (r.size, *(r.swept.get(k, "") for k in extra)))
    colours = {s: f"C{i % 10}" for i, s in enumerate(_ordered(map(line_label, ordered)))}
    fig = Figure(figsize=(3.6 * len(lrs) + 1, 2.8 * len(inits) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(inits), len(lrs), sharex=True, sharey=True,
                                      squeeze=False))
    for i, init in enumerate(inits):
        for j, lr in enumerate(lrs):
            ax = axes[i, j]
            ax.set_title(f"{init}, lr {lr:g}", fontsize=9)
            ax.grid(alpha=0.3)
            for run in runs:
                if run.init != init or run.lr != lr or metric not in run.curves:
                    continue
                values = np.asarray(run.curves[metric], dtype=float)
                values = np.where(np.isfinite(values), values, np.nan)
                epochs = np.arange(1, len(values) + 1)
                colour = colours[line_label(run)]
                ax.plot(epochs, values, "-o", ms=2, lw=1, color=colour, label=line_label(run))
                if run.status != "FINISHED":  # where it stopped, and why (see the table)
                    ax.plot(epochs[-1:], values[-1:], "x", ms=8, color=colour)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if log_y:
                ax.set_yscale("log")
            if i == len(inits) - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(ylabel)
    handles, labels = [], []
    for ax in axes.ravel():  # one legend entry per line label, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right upper",
                   title="training images" + (", " + ", ".join(
                       swept.short_names(extra).values()) if extra else ""))
    fig.suptitle(f"{ylabel} per epoch (x: run stopped early)")
    return fig


def accuracy_vs_size_figure(runs: Sequence[RunSummary]) -> Figure:
    """Final test accuracy against n_train: one panel per lr, one line per initialisation
    and value of the other keys the sweep varies; seeds of one line are averaged."""
    extra = extra_keys(runs, swept.FIGURE_KEYS)

    def line_of(r: RunSummary) -> str:
        return ", ".join([r.init, *filter(None, [swept.label(r.swept, extra)])])

    lines = _ordered(map(line_of, runs))
    lrs = sorted(_ordered(r.lr for r in runs))
    fig = Figure(figsize=(3.8 * len(lrs) + 1, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(lrs), sharey=True, squeeze=False)).ravel()
    for ax, lr in zip(axes, lrs, strict=True):
        for k, line in enumerate(lines):
            by_size: dict[float, list[float]] = defaultdict(list)
            for run in runs:
                if line_of(run) == line and run.lr == lr and run.test_acc is not None:
                    by_size[run.size].append(run.test_acc)
            sizes = sorted(s for s in by_size if math.isfinite(s))
            if not sizes:
                continue
            means = [np.mean(by_size[s]) for s in sizes]
            spread = [np.std(by_size[s]) for s in sizes]
            ax.errorbar(sizes, means, yerr=spread if max(spread) > 0 else None, fmt="-o",
                        ms=4, capsize=3, color=f"C{k % 10}", label=line)
        ax.set_xscale("log", base=2)
        sizes_here = sorted({r.size for r in runs if r.lr == lr and math.isfinite(r.size)})
        ax.set_xticks(sizes_here, [f"{s:g}" for s in sizes_here])  # the sizes, not powers of 2
        ax.minorticks_off()
        ax.set_title(f"lr {lr:g}", fontsize=9)
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
        ax.axhline(0.1, color="grey", lw=0.8, ls=":")  # chance level for ten classes
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1)
    for ax in axes:  # the legend goes in the first panel that has lines
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title=", ".join(["initialisation",
                                       *swept.short_names(extra).values()]), fontsize=8)
            break
    fig.suptitle("final test accuracy (dotted: chance); runs that failed have no point")
    return fig
