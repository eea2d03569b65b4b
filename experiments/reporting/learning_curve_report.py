"""The learning curves (experiments.reporting.learning_curve) as the sweep's report shows
them: a figure, a CSV, a markdown section and the parent run's metrics."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.reporting.groups import mean_and_ci
from experiments.reporting.learning_curve import TARGET_N, Interval, LearningCurve
from experiments.reporting.panels import panel_figure


def learning_curve_figure(curves: Sequence[LearningCurve]) -> Figure:
    """Test error against training images (log x), one panel per group: each run as a dot,
    each size's mean, the fitted curve out to TARGET_N with its 95% bootstrap band, and
    the extrapolation with its interval."""
    fig, axes = panel_figure(len(curves), 3, sharey=False, legend_width=0.0)
    for ax, curve in zip(axes, curves, strict=True):
        sizes = list(curve.errors)
        for n in sizes:
            ax.plot([n] * len(curve.errors[n]), curve.errors[n], "o", color="C0", ms=3,
                    alpha=0.5)
        ax.plot(sizes, [np.mean(curve.errors[n]) for n in sizes], "s", color="C0", ms=5,
                label="mean of the seeds")
        grid, low, high = curve.bands
        ax.plot(grid, curve.fit.error(grid), "-", color="C1",
                label=f"a + b·n^-c: a={curve.fit.a:.3f}, c={curve.fit.c:.2f}")
        if curve.resamples:
            ax.fill_between(grid, low, high, color="C1", alpha=0.2, lw=0,
                            label="95% bootstrap band")
        x = curve.extrapolated
        if not math.isnan(x.low):
            ax.errorbar([TARGET_N], [x.value], yerr=[[x.value - x.low], [x.high - x.value]],
                        fmt="*", color="C3", ms=9, capsize=3)
        ax.plot([TARGET_N], [x.value], "*", color="C3", ms=9,
                label=f"at {TARGET_N:,}: {x.text()}%")
        ax.axvline(curve.largest, color="grey", lw=0.8, ls=":")  # where the data end
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_ylabel("test error")
        ax.set_title(curve.label, fontsize=9, wrap=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("learning curve: test error against training-set size "
                 "(dotted: the largest size measured)", fontsize=10, wrap=True)
    return fig


def _cells(name: str, i: Interval | None) -> dict[str, str]:
    if i is None:
        return {name: "", f"{name}_low": "", f"{name}_high": ""}
    return {name: repr(i.value), f"{name}_low": "" if math.isnan(i.low) else repr(i.low),
            f"{name}_high": "" if math.isnan(i.high) else repr(i.high)}


def curve_rows(curves: Sequence[LearningCurve]) -> list[dict[str, str]]:
    rows = []
    for c in curves:
        observed = c.observed_largest
        rows.append({
            "group": c.label, "sizes": " ".join(f"{n:g}" for n in c.errors),
            "runs": str(sum(map(len, c.errors.values()))), "resamples": str(c.resamples),
            **_cells("a", c.a), "b": repr(c.fit.b_unscaled), **_cells("c", c.c),
            "largest": f"{c.largest:g}", "observed_error": repr(observed.mean),
            "observed_error_ci95": "" if math.isnan(observed.ci95) else repr(observed.ci95),
            **_cells("fitted_error", c.at_largest), **_cells("held_out_error", c.held_out),
            **_cells(f"error_at_{TARGET_N}", c.extrapolated)})
    return rows


def write_curves_csv(curves: Sequence[LearningCurve], path: Path) -> None:
    rows = curve_rows(curves)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _score(c: LearningCurve) -> str:
    if c.held_out is None:
        return "no held-out score: it needs 3 sizes below the largest"
    observed = c.observed_largest
    inside = (not math.isnan(c.held_out.low)
              and c.held_out.low <= observed.mean <= c.held_out.high)
    return (f"fitted on the sizes below {c.largest:g}, it predicts {c.held_out.text()}% there, "
            f"against {mean_and_ci(observed, 100, 1)}% measured: off by "
            f"{abs(c.held_out_miss) * 100:.1f} points, "
            + ("inside its interval" if inside else "outside its interval"))


def curves_section(curves: Sequence[LearningCurve]) -> str:
    """Markdown: each group's curve, its error at the largest size and at TARGET_N, its score."""
    lines = ["## Learning curve", "",
             "Test error e(n) = a + b·n^-c fitted to every run (scipy.optimize.curve_fit), "
             "with 95% intervals from a bootstrap over the seeds at each size "
             "(experiments.reporting.learning_curve). Errors in %.", ""]
    if not curves:
        return "\n".join([*lines, "No group has 3 sizes and more runs than the curve's "
                                  "3 parameters: no curve.", ""])
    for c in curves:
        band = (f"{c.resamples} bootstrap fits" if c.resamples
                else "one run per size, so no interval")
        # a at its lower bound: the curve is a pure power law here, and its intervals
        # hold only if no floor appears beyond the sizes measured.
        floor = (", at its bound: these sizes show no floor" if c.a.value < 1e-6 else "")
        lines += [f"- **{c.label}**: a = {c.a.text()}%{floor}; b = {c.fit.b_unscaled:.3g}, "
                  f"c = {c.c.text(1, 2)} ({band}).",
                  f"  - at {c.largest:g} images: {c.at_largest.text()}% fitted, "
                  f"{mean_and_ci(c.observed_largest, 100, 1)}% measured "
                  f"({c.observed_largest.n} seeds);",
                  f"  - extrapolated to {TARGET_N:,}: {c.extrapolated.text()}%;",
                  f"  - score: {_score(c)}."]
    return "\n".join([*lines, ""])


def curve_metrics(curves: Sequence[LearningCurve]) -> dict[str, float]:
    """The parent run's metrics of the curve when the sweep has one group (else {})."""
    if len(curves) != 1:
        return {}
    c = curves[0]
    found = {"curve_a": c.fit.a, "curve_c": c.fit.c,
             "curve_error_largest": c.at_largest.value,
             f"curve_error_{TARGET_N}": c.extrapolated.value}
    if not math.isnan(c.extrapolated.low):
        found |= {f"curve_error_{TARGET_N}_low": c.extrapolated.low,
                  f"curve_error_{TARGET_N}_high": c.extrapolated.high}
    if c.held_out is not None:
        found["curve_held_out_miss"] = c.held_out_miss
    return found
