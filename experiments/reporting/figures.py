"""A sweep's comparison figures, and which of them it gets: its learning curves
(experiments.reporting.curves), final test accuracy per seed group with its 95%
interval, and final test accuracy against training-set size when the sweep has sizes."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from matplotlib.figure import Figure

from experiments.reporting import panels
from experiments.reporting.collect import RunSummary, extra_keys
from experiments.reporting.curves import curves_figure
from experiments.reporting.groups import Group, describe, seed_groups
from experiments.tracking import swept

CHANCE = 0.1  # ten classes


def sizes_of(runs: Sequence[RunSummary]) -> list[float]:
    """The sweep's numeric training-set sizes ("all" has none to plot at)."""
    return sorted({r.size for r in runs if math.isfinite(r.size)})


def sweep_figures(runs: Sequence[RunSummary]) -> tuple[dict[str, Figure], str]:
    """The report's figures by file name, and a line for summary.md saying which ones a
    sweep without training-set sizes does not get, and why."""
    has_val = any("val_acc" in r.curves for r in runs)
    figures = {
        "learning_curves_loss.png": curves_figure(
            runs, [("train_loss", "training"), ("val_loss", "validation")], "loss", True),
        "learning_curves_acc.png": curves_figure(
            runs, [("val_acc", "validation")] if has_val else [("train_acc", "training")],
            "validation accuracy" if has_val else "training accuracy", False),
        "accuracy_by_group.png": accuracy_by_group_figure(seed_groups(runs)),
    }
    if len(sizes_of(runs)) > 1:
        figures["accuracy_vs_size.png"] = accuracy_vs_size_figure(runs)
        return figures, ""
    sizes = ", ".join(panels.ordered(r.n_train for r in runs)).replace("None", "all")
    return figures, ("No accuracy_vs_size.png: the sweep has one training-set size "
                     f"(n_train={sizes}); accuracy_by_group.png shows each group's final "
                     "test accuracy with its 95% confidence interval.\n")


def accuracy_by_group_figure(groups: Sequence[Group]) -> Figure:
    """Each seed group's final test accuracy: its seeds as dots, their mean with its 95%
    interval (Student t) as a bar; one row per group, so any number of them fits."""
    fig = Figure(figsize=(7.0, 1.6 + 0.32 * max(1, len(groups))), layout="constrained")
    ax = fig.subplots()
    labels = []
    for row, g in enumerate(groups):
        seeds = g.by_seed("test_acc")
        s = g.stats("test_acc")
        ax.plot(list(seeds.values()), [row] * len(seeds), "o", ms=4, alpha=0.5, color="C0")
        if s.n:
            ax.errorbar([s.mean], [row], xerr=[s.ci95] if s.n > 1 else None, fmt="D", ms=6,
                        capsize=4, color="C0")
        missing = len(g.runs) - s.n
        if s.n == 0:
            count = f"{missing} run{'s' * (missing != 1)}, none with a test accuracy"
        else:
            count = f"{s.n} seed{'s' * (s.n != 1)}" + (f", {missing} failed" if missing else "")
        labels.append(f"{g.label}  ({count})")
    ax.set_yticks(range(len(groups)), labels, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)  # the sweep's first group at the top
    scored = [v for g in groups for v in g.by_seed("test_acc").values()]
    if scored and min(scored) < 2 * CHANCE:
        ax.axvline(CHANCE, color="grey", lw=0.8, ls=":")
    low, high = ax.get_xlim()
    ax.set_xlim(max(low, 0.0), min(high, 1.0))  # an interval past 1 is cut at the edge
    ax.set_xlabel("final test accuracy")
    ax.grid(alpha=0.3, axis="x")
    panels.fitted_title(fig, "final test accuracy per group: the mean of its seeds "
                             "(diamond) with its 95% confidence interval; dots: the seeds"
                        + ("; dotted: chance" if scored and min(scored) < 2 * CHANCE else ""))
    return fig


def accuracy_vs_size_figure(runs: Sequence[RunSummary]) -> Figure:
    """Final test accuracy against n_train: one panel per lr, one line per initialisation
    and value of the other keys the sweep varies; each point the mean of its seeds, with
    the 95% interval when there are several."""
    extra = extra_keys(runs, swept.FIGURE_KEYS)

    def line_of(r: RunSummary) -> str:
        return ", ".join([r.init, *filter(None, [swept.label(r.swept, extra)])])

    lines = panels.ordered(map(line_of, runs))
    colour = panels.colours(lines)
    lrs = sorted(panels.ordered(r.lr for r in runs))
    fig, axes = panels.panel_figure(len(lrs), legend_width=2.4)
    cols = panels.grid_shape(len(lrs))[1]
    for k, (ax, lr) in enumerate(zip(axes, lrs, strict=True)):
        for line in lines:
            by_size: dict[float, list[float]] = defaultdict(list)
            for run in runs:
                if line_of(run) == line and run.lr == lr and run.test_acc is not None \
                        and math.isfinite(run.test_acc):
                    by_size[run.size].append(run.test_acc)
            sizes = [s for s in sorted(by_size) if math.isfinite(s)]
            if not sizes:
                continue
            stats = [describe(by_size[s]) for s in sizes]
            ci = [0.0 if math.isnan(s.ci95) else s.ci95 for s in stats]
            ax.errorbar(sizes, [s.mean for s in stats], yerr=ci if max(ci) > 0 else None,
                        fmt="-o", ms=4, capsize=3, color=colour[line], label=line)
        ax.set_xscale("log", base=2)
        sizes_here = sizes_of([r for r in runs if r.lr == lr])
        ax.set_xticks(sizes_here, [f"{s:g}" for s in sizes_here])  # the sizes, not powers of 2
        ax.minorticks_off()
        ax.set_title(f"lr {lr:g}", fontsize=9)
        if k + cols >= len(lrs):
            ax.set_xlabel("training images")
        if k % cols == 0:
            ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.axhline(CHANCE, color="grey", lw=0.8, ls=":")
    axes[0].set_ylim(0, 1)
    handles, labels = [], []
    for ax in axes:  # one entry per line, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8,
                   title=", ".join(["initialisation", *swept.short_names(extra).values()]))
    panels.fitted_title(fig, "final test accuracy: mean and 95% confidence interval over "
                             "seeds (dotted: chance); runs that failed have no point", 2.4)
    return fig
