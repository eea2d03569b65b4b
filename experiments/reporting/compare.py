"""Whether one seed group beats another, paired by seed.

Runs of one seed share their initial weights' draw, data split and batch order, so the
difference seed by seed is far less noisy than the two groups' means apart: a paired
t-test (scipy.stats.ttest_rel) on the runs the two groups have for the same seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.reporting.groups import Group, best_group, describe, half_width

ALPHA = 0.05
MAX_SEEDS = 10_000  # past this, "more than" is all the estimate says
# How each metric is read: whether higher is better, and how a difference is written.
HIGHER_IS_BETTER = {"test_acc": True, "test_loss": False}


@dataclass
class Comparison:
    """b minus a on `metric` over their common seeds: the mean difference, the half-width
    of its 95% interval, the paired t-test's p-value, and the words."""

    a: str
    b: str
    metric: str
    seeds: list[str]
    difference: float  # mean of b - a, seed by seed
    ci95: float
    p_value: float
    seeds_needed: int | None  # when not distinguishable: seeds for ci95 < |difference|
    text: str

    @property
    def distinguishable(self) -> bool:
        return self.p_value < ALPHA


def seeds_needed(sd: float, difference: float) -> int | None:
    """The fewest seeds whose 95% half-width, at the observed spread of the differences,
    falls below the observed difference; None when the difference is 0 (no number will)."""
    if difference == 0 or math.isnan(sd):
        return None
    if sd <= 1e-12:
        return 2
    n = 2
    while n <= MAX_SEEDS:
        if half_width(sd, n) < abs(difference):
            return n
        n += 1
    return MAX_SEEDS + 1


def _amount(metric: str, value: float) -> str:
    # Accuracy in percentage points, which is how accuracies are compared; a loss as is.
    return f"{value * 100:.1f}" if metric.endswith("acc") else f"{value:.3g}"


def _unit(metric: str) -> str:
    return "points" if metric.endswith("acc") else metric.removeprefix("test_")


def paired_comparison(a: Group, b: Group, metric: str = "test_acc") -> Comparison:
    """Whether b beats a on `metric` (higher test_acc, lower test_loss), paired by seed."""
    from scipy import stats  # here, not at the top: see groups.half_width

    ours, theirs = a.by_seed(metric), b.by_seed(metric)
    seeds = sorted(set(ours) & set(theirs), key=lambda s: (len(s), s))
    n = len(seeds)
    if n < 2:
        return Comparison(a.label, b.label, metric, seeds, math.nan, math.nan, math.nan,
                          None, f"{a.label} and {b.label} cannot be compared: {n} seed(s) "
                                "in common, a paired test needs 2")
    xs, ys = [ours[s] for s in seeds], [theirs[s] for s in seeds]
    diffs = describe([y - x for x, y in zip(xs, ys, strict=True)])
    # Below 1e-12 the spread is rounding (accuracies step by 1 / test images), not seeds.
    with_spread = diffs.sd > 1e-12
    # Identical differences on every seed: t is infinite (p 0), or undefined if they are 0.
    p = float(stats.ttest_rel(ys, xs).pvalue) if with_spread else (
        0.0 if diffs.mean != 0 else 1.0)
    ci = diffs.ci95
    needed = None if p < ALPHA else seeds_needed(diffs.sd, diffs.mean)
    if p < ALPHA:
        b_better = (diffs.mean > 0) == HIGHER_IS_BETTER.get(metric, True)
        winner = b.label if b_better else a.label
        amount = f"{_amount(metric, abs(diffs.mean))} ± {_amount(metric, ci)}"
        if metric.endswith("acc"):
            text = f"{winner} is {amount} points better (p={p:.2g}, {n} seeds)"
        else:
            text = (f"{winner} is better: its {metric} is {amount} "
                    f"{'higher' if HIGHER_IS_BETTER.get(metric, True) else 'lower'} "
                    f"(p={p:.2g}, {n} seeds)")
    else:
        tail = ("no number of seeds would tell: the means are equal" if needed is None
                else f"about {needed if needed <= MAX_SEEDS else f'more than {MAX_SEEDS}'} "
                     "seeds would tell")
        text = (f"{a.label} and {b.label} are not distinguishable with {n} seeds "
                f"({b.label} minus {a.label}: {_amount(metric, diffs.mean)} ± "
                f"{_amount(metric, ci)} {_unit(metric)}, p={p:.2g}); {tail}")
    return Comparison(a.label, b.label, metric, seeds, diffs.mean, ci, p, needed, text)


def comparisons_section(groups: Sequence[Group], metric: str = "test_acc",
                        limit: int = 10) -> str:
    """Markdown: the best group against each other group, paired by seed."""
    best = best_group(groups)
    others = [g for g in groups if g is not best]
    lines = ["## Paired comparisons", ""]
    if best is None or not others:
        return "\n".join([*lines, "One group only: nothing to compare.", ""])
    lines += [f"The best group by mean {metric}, **{best.label}**, against each other, "
              "paired by seed (scipy.stats.ttest_rel; ± the 95% interval's half-width):", ""]
    for g in others[:limit]:
        lines.append(f"- vs {g.label}: {paired_comparison(g, best, metric).text}.")
    if len(others) > limit:
        lines.append(f"- ... {len(others) - limit} more groups (groups.csv)")
    return "\n".join([*lines, ""])
