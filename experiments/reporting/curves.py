"""A sweep's learning curves: one panel per (initialisation, learning rate), one colour
per seed group (runs that differ only in trainer.seed), drawn as the mean of its finished
seeds with their min-max band; a second metric (validation beside training) dashed in the
same colour; a run that stopped early thin, with an x where it stopped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from experiments.reporting import panels
from experiments.reporting.collect import RunSummary, extra_keys, not_converged
from experiments.reporting.groups import seed_groups
from experiments.tracking import swept, tags

STYLES = ("-", "--")  # the first metric solid, the second dashed
STOP = dict(marker="x", ms=8, mew=2, ls="none", clip_on=False, zorder=5)
CLIPPED = dict(marker="^", ms=5, ls="none", clip_on=False, zorder=4)


@dataclass
class Line:
    """A seed group's runs in one panel, and the legend label of its colour."""

    panel: tuple[str, float]
    label: str
    runs: list[RunSummary] = field(default_factory=list)

    @property
    def finished(self) -> list[RunSummary]:
        return [r for r in self.runs if r.status == "FINISHED"]


def line_keys(runs: Sequence[RunSummary]) -> tuple[bool, list[str]]:
    """Whether the training-set size tells lines apart, and the other swept keys that do
    (the panels show the initialisation and the rate, the band the seeds)."""
    return len({r.n_train for r in runs}) > 1, extra_keys(runs, swept.FIGURE_KEYS)


def line_label(r: RunSummary, by_size: bool, extra: Sequence[str]) -> str:
    size = [f"n_train={'all' if r.n_train in ('all', 'None') else r.n_train}"] if by_size else []
    return ", ".join([*size, *filter(None, [swept.label(r.swept, extra)])])


def lines_of(runs: Sequence[RunSummary]) -> list[Line]:
    """The seed groups, each split by panel (for runs read back without their params)."""
    by_size, extra = line_keys(runs)
    found: dict[tuple, Line] = {}
    for k, group in enumerate(seed_groups(runs)):
        for r in group.runs:
            panel = (r.init, r.lr)
            found.setdefault((k, panel), Line(panel, line_label(r, by_size, extra))).runs.append(r)
    # By size, then by each swept value as a number where it is one (32 before 128).
    return sorted(found.values(), key=lambda line: min(
        (r.size, *(_natural(r.swept.get(k, "")) for k in extra)) for r in line.runs))


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def series(r: RunSummary, metric: str) -> np.ndarray:
    return np.asarray(r.curves.get(metric, []), dtype=float)


def stop_point(r: RunSummary, metric: str) -> tuple[float, float | None] | None:
    """(epoch, value) where a run that did not finish stopped; value None when its loss
    diverged there (drawn at the axis' edge). None when nothing tells where."""
    values = series(r, metric)
    epoch = r.tags.get(tags.FAILURE_EPOCH, "")
    if epoch.isdigit():  # it diverged in that epoch, which was never logged
        return float(epoch), None
    if len(values):
        return float(len(values)), float(values[-1])
    return None


class Drawer:
    """Draws lines into panels under a common y top, and remembers what the legend of
    styles must explain."""

    def __init__(self, top: float | None, high_is_bad: bool) -> None:
        self.top, self.high_is_bad = top, high_is_bad
        self.banded = self.stopped = self.clipped = False

    def curve(self, ax: Axes, values: np.ndarray, colour, style: str, lw: float,
              alpha: float = 1.0) -> None:
        if not len(values):
            return
        epochs = np.arange(1, len(values) + 1)
        shown = values if self.top is None else np.minimum(values, self.top)
        ax.plot(epochs, shown, style, lw=lw, color=colour, alpha=alpha,
                marker="o" if len(values) <= 12 else None, ms=2)
        if self.top is not None and (over := values > self.top).any():
            ax.plot(epochs[over], np.full(over.sum(), self.top), color=colour, **CLIPPED)
            self.clipped = True

    def band(self, ax: Axes, stack: list[np.ndarray], colour, style: str) -> None:
        """The mean of the seeds' curves, and their min-max band, over the epochs all have."""
        length = min(map(len, stack))
        if length == 0:
            return
        values = np.vstack([s[:length] for s in stack])
        self.curve(ax, values.mean(axis=0), colour, style, lw=1.4)
        low, high = values.min(axis=0), values.max(axis=0)
        if self.top is not None:
            low, high = np.minimum(low, self.top), np.minimum(high, self.top)
        ax.fill_between(np.arange(1, length + 1), low, high, color=colour,
                        alpha=0.18 if style == STYLES[0] else 0.09, lw=0)
        self.banded = True

    def stop(self, ax: Axes, r: RunSummary, metric: str, colour) -> None:
        where = stop_point(r, metric)
        if where is None:
            return
        epoch, value = where
        if value is None or not math.isfinite(value) or (self.top is not None
                                                         and value > self.top):
            # Beyond the axis: at its top for a loss, its bottom for an accuracy.
            ax.plot([epoch], [1.0 if self.high_is_bad else 0.0], color=colour,
                    transform=ax.get_xaxis_transform(), **STOP)
        else:
            ax.plot([epoch], [value], color=colour, **STOP)
        self.stopped = True


def _plain_log_ticks(ax: Axes) -> None:
    """A log y axis labelled 0.2, 0.5, 1, 2 rather than 2x10^-1: the decades; 2 and 5
    times them while the axis spans less than two decades, every tick under a factor 4."""
    ax.set_yscale("log")

    def minor(value: float, _pos: int) -> str:
        low, high = ax.get_ylim()
        lead = round(value / 10 ** math.floor(math.log10(value)))
        shown = high / low < 4 or (high / low < 100 and lead in (2, 5))
        return f"{value:g}" if shown else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _panel_title(panel: tuple[str, float], inits: list, lrs: list) -> str:
    init, lr = panel
    parts = [init] if len(inits) > 1 or len(lrs) == 1 else []
    return ", ".join([*parts, f"lr {lr:g}"])


def curves_figure(runs: Sequence[RunSummary], metrics: Sequence[tuple[str, str]],
                  ylabel: str, log_y: bool) -> Figure:
    """One panel per (initialisation, learning rate); `metrics`, (key, name) pairs such
    as train_loss and val_loss, solid and dashed (the second only where it was logged).

    log_y marks a loss: a log axis whose top the converged runs set (panels.robust_top),
    shared by all panels so that they compare, with the values beyond it at its edge."""
    present = [(m, n) for m, n in metrics[:2] if any(m in r.curves for r in runs)]
    names = dict(present or metrics[:1])
    metrics = list(names)
    lines = lines_of(runs)
    inits, lrs = panels.ordered(r.init for r in runs), sorted(panels.ordered(r.lr for r in runs))
    grid = len(inits) > 1 and len(lrs) <= panels.MAX_COLUMNS  # rows: inits, columns: rates
    keys = [(i, lr) for i in inits for lr in lrs
            if grid or any(ln.panel == (i, lr) for ln in lines)]
    colour = panels.colours([ln.label for ln in lines])
    stuck = {id(r) for r in not_converged(runs)}
    values = [v for r in runs for m in metrics for v in series(r, m)]
    healthy = [v for r in runs if id(r) not in stuck for m in metrics for v in series(r, m)]
    drawer = Drawer(panels.robust_top(healthy, values, log_y) if log_y else None, log_y)
    legend_width = 2.4 if any(ln.label for ln in lines) else 1.6
    columns = len(lrs) if grid else None
    fig, axes = panels.panel_figure(max(1, len(keys)), columns, legend_width=legend_width)
    cols = panels.grid_shape(max(1, len(keys)), columns)[1]
    for k, (ax, key) in enumerate(zip(axes, keys, strict=False)):
        ax.set_title(_panel_title(key, inits, lrs), fontsize=9)
        ax.grid(alpha=0.3)
        for line in (ln for ln in lines if ln.panel == key):
            finished = line.finished
            for style, metric in zip(STYLES, metrics, strict=False):
                stack = [series(r, metric) for r in finished if metric in r.curves]
                if len(stack) > 1:
                    drawer.band(ax, stack, colour[line.label], style)
                elif stack:
                    drawer.curve(ax, stack[0], colour[line.label], style, lw=1.2)
            for r in line.runs:
                if r.status == "FINISHED":
                    continue
                for style, metric in zip(STYLES, metrics, strict=False):
                    drawer.curve(ax, series(r, metric), colour[line.label], style, lw=0.8,
                                 alpha=0.7)
                drawer.stop(ax, r, metrics[0], colour[line.label])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log_y:
            _plain_log_ticks(ax)
        if k + cols >= len(keys):
            ax.set_xlabel("epoch")
        if k % cols == 0:
            ax.set_ylabel(ylabel)
    if drawer.top is not None:
        axes[0].set_ylim(top=drawer.top)  # shared: every panel
    _legends(fig, lines, colour, runs, metrics, names, drawer)
    stop_note = "; x: where a run stopped" if drawer.stopped else ""
    panels.fitted_title(fig, f"{ylabel} per epoch{stop_note}", legend_width)
    return fig


def _legends(fig: Figure, lines: list[Line], colour: dict, runs: Sequence[RunSummary],
             metrics: list[str], names: dict[str, str], drawer: Drawer) -> None:
    """A legend of colours (the swept keys' values) and one of what the styles mean."""
    labelled = [ln.label for ln in lines if ln.label]
    if labelled:
        by_size, extra = line_keys(runs)
        title = ", ".join([*(["n_train"] if by_size else []),
                           *swept.short_names(extra).values()])
        labelled = panels.ordered(labelled)
        fig.legend([Line2D([], [], color=colour[label], lw=2) for label in labelled],
                   labelled, loc="outside right upper", title=title, fontsize=8)
    handles, labels = [], []
    if len(metrics) > 1:
        for style, metric in zip(STYLES, metrics, strict=False):
            handles.append(Line2D([], [], color="k", ls=style))
            labels.append(names[metric])
    if drawer.banded:
        handles.append(Patch(color="k", alpha=0.2, lw=0))
        labels.append("mean of a group's\nfinished seeds,\nband: their min-max")
    if drawer.stopped:
        handles.append(Line2D([], [], color="k", **STOP))
        labels.append("stopped early (thin);\nat the edge: diverged")
    if drawer.clipped:
        handles.append(Line2D([], [], color="k", **CLIPPED))
        labels.append("beyond the axis")
    if handles:
        fig.legend(handles, labels, loc="outside right lower", fontsize=8)
