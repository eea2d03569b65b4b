"""What the sweep figures share so that they read well with 1 or 40 panels and any swept
keys: a grid of panels that wraps, a title that fits the figure, one colour per line
label, and a y range that healthy runs set, with the values beyond it marked at its edge."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MAX_COLUMNS = 6
TITLE_POINTS = 11


def ordered(values) -> list:
    """Distinct values in first-seen order (the sweep's own order for names)."""
    return list(dict.fromkeys(values))


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) for n panels: `columns` when given and at most MAX_COLUMNS, else
    about square, so 12 panels are 3 x 4 rather than one row of 12."""
    if columns is None or columns > MAX_COLUMNS:
        columns = min(MAX_COLUMNS, max(1, math.ceil(math.sqrt(n))))
    columns = max(1, min(columns, n))
    return math.ceil(n / columns), columns


def panel_figure(n: int, columns: int | None = None, *, sharey: bool = True,
                 legend_width: float = 2.0) -> tuple[Figure, list[Axes]]:
    """A figure with n panels in rows of `columns` (see grid_shape), smaller panels for
    many of them, and the axes in reading order; the unused cells of the last row are
    removed and the panels above them get back their x tick labels."""
    rows, cols = grid_shape(n, columns)
    width, height = (3.4, 2.6) if cols <= 4 else (2.8, 2.2)
    fig = Figure(figsize=(width * cols + legend_width, height * rows + 0.9),
                 layout="constrained")
    grid = np.atleast_2d(fig.subplots(rows, cols, sharex=True, sharey=sharey, squeeze=False))
    axes = list(grid.ravel())
    for cell in axes[n:]:
        fig.delaxes(cell)
    for k, ax in enumerate(axes[:n]):
        if k + cols >= n:  # nothing below it: it carries the column's x labels
            ax.xaxis.set_tick_params(labelbottom=True)
    return fig, axes[:n]


def fitted_title(fig: Figure, text: str, legend_width: float = 0.0,
                 fontsize: float = TITLE_POINTS) -> None:
    """A suptitle over the panels, wrapped to their width, so that no part of it is cut
    off or runs into the legend that takes `legend_width` inches on the right."""
    width = fig.get_figwidth() - legend_width
    # About 0.55 em per character of the default sans-serif font.
    per_line = max(20, int(width * 72 / (0.55 * fontsize)) - 2)
    fig.suptitle(textwrap.fill(text, per_line), fontsize=fontsize,
                 x=0.5 * width / fig.get_figwidth())


def colours(labels: Sequence[str]) -> dict[str, tuple | str]:
    """One colour per label: the default cycle for up to 10, tab20 then (repeating)."""
    labels = ordered(labels)
    if len(labels) <= 10:
        return {label: f"C{i}" for i, label in enumerate(labels)}
    from matplotlib import colormaps

    tab20 = colormaps["tab20"]
    return {label: tab20(i % 20) for i, label in enumerate(labels)}


def robust_top(pool: Sequence[float], everything: Sequence[float], log: bool) -> float | None:
    """The top of a y axis that the values in `pool` (the healthy runs') set, or None when
    every value fits below it.

    The upper Tukey fence of the pool (third quartile + 1.5 interquartile ranges, in
    decades on a log axis), so that one diverged epoch (1e7) does not flatten the curves
    that matter; no value is clipped when all lie within it."""
    def usable(values: Sequence[float]) -> np.ndarray:
        v = np.asarray([x for x in values if math.isfinite(x) and (x > 0 or not log)], float)
        return np.log10(v) if log else v

    pool_t, all_t = usable(pool), usable(everything)
    if pool_t.size == 0:
        pool_t = all_t
    if pool_t.size == 0:
        return None
    q1, q3 = np.quantile(pool_t, [0.25, 0.75])
    spread = max(q3 - q1, 0.1 if log else 1e-3 * max(1.0, abs(q3)))
    fence = q3 + 1.5 * spread
    if all_t.max() <= fence and not any(math.isinf(x) for x in everything):
        return None
    return float(10 ** fence if log else fence)
