"""Results tables with their provenance, rebuilt from logged sweeps rather than copied by
hand: each seed group of each sweep is one row, with every seed's test accuracy, their
mean and its 95% interval, and where the numbers come from (the parent run, the code's
commit, the date, the CPU and the BLAS kernel, the wall time per run).

Against a target accuracy a row says whether its mean is distinguishable from it (a
one-sample t-test); with two sweeps or more, each later sweep's best group is compared
with the first's, paired by seed (experiments.reporting.compare).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.reporting.collect import RunSummary, collect_runs, trained_runs
from experiments.reporting.compare import ALPHA, paired_comparison
from experiments.reporting.groups import Group, best_group, mean_and_ci, seed_groups
from experiments.tracking import swept, tags


@dataclass
class ResultRow:
    """One seed group of one sweep, with its provenance."""

    parent: str
    group: Group
    recipe: str
    commits: list[str]
    date: str
    cpu: str
    kernel: str
    minutes: tuple[float, float]  # the shortest and longest run's wall time

    @property
    def accuracies(self) -> dict[str, float]:
        return self.group.by_seed("test_acc")


def _recipe(group: Group) -> str:
    """The group's overrides but the seed's: what reproduces it, with trainer.seed=N."""
    first = group.runs[0].tags.get(tags.OVERRIDES, "").split()
    common = [o for o in first if all(o in r.tags.get(tags.OVERRIDES, "").split()
                                      for r in group.runs)]
    kept = [o for o in common if not o.startswith(f"{swept.SEED_KEY}=")]
    return " ".join(kept) or group.label


def _distinct(runs: Sequence[RunSummary], key: str) -> list[str]:
    return list(dict.fromkeys(r.tags.get(key, "?") for r in runs))


def _commit(r: RunSummary) -> str:
    commit = r.tags.get(tags.GIT_COMMIT, "?")[:7]
    return commit + ("+dirty" if r.tags.get(tags.GIT_DIRTY) == "true" else "")


def result_rows(parent_ids: Sequence[str]) -> list[ResultRow]:
    """A row per seed group of each sweep, in the sweeps' order."""
    rows = []
    for parent in parent_ids:
        # A search's trials over replicates by their seed runs, which trained.
        runs = [r for r in trained_runs(collect_runs(parent)) if r.status == "FINISHED"]
        for group in seed_groups(runs):
            starts = [r.start_time for r in group.runs]
            minutes = [(r.end_time - r.start_time) / 60_000 for r in group.runs]
            rows.append(ResultRow(
                parent=parent, group=group, recipe=_recipe(group),
                commits=list(dict.fromkeys(map(_commit, group.runs))),
                date=time.strftime("%Y-%m-%d", time.gmtime(min(starts) / 1000)),
                cpu=", ".join(_distinct(group.runs, tags.CPU)),
                kernel=", ".join(_distinct(group.runs, tags.BLAS_KERNEL)),
                minutes=(min(minutes), max(minutes))))
    return rows


def against_target(group: Group, target: float) -> str:
    """Whether the group's mean test accuracy is distinguishable from `target`."""
    from scipy import stats  # here, not at the top: see groups.half_width

    values = list(group.by_seed("test_acc").values())
    if len(values) < 2:
        return f"one seed: cannot be told from {target:.0%}"
    if len(set(values)) == 1:
        return f"{'above' if values[0] > target else 'below'} {target:.0%} on every seed"
    p = float(stats.ttest_1samp(values, target).pvalue)
    mean = math.fsum(values) / len(values)
    if p < ALPHA:
        return f"{'above' if mean > target else 'below'} {target:.0%} (p={p:.2g})"
    return f"not distinguishable from {target:.0%} with {len(values)} seeds (p={p:.2g})"


def results_table(rows: Sequence[ResultRow], target: float | None = None) -> str:
    """Markdown: a row per group, accuracies in %."""
    head = ["recipe", "n", "test accuracy per seed", "mean ± 95% CI"]
    head += ["against the target"] if target is not None else []
    head += ["parent run", "commit", "date", "CPU", "BLAS kernel", "minutes per run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        seeds = " / ".join(f"{acc * 100:.2f}" for acc in row.accuracies.values())
        cells = [f"`{row.recipe}`", str(len(row.accuracies)), seeds,
                 mean_and_ci(row.group.stats("test_acc"), 100, 2)]
        cells += [against_target(row.group, target)] if target is not None else []
        low, high = row.minutes
        cells += [row.parent[:8], ", ".join(row.commits), row.date, row.cpu, row.kernel,
                  f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f}"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def comparisons(rows: Sequence[ResultRow]) -> list[str]:
    """Each later sweep's best group against the first sweep's, paired by seed."""
    by_parent: dict[str, list[Group]] = {}
    for row in rows:
        by_parent.setdefault(row.parent, []).append(row.group)
    bests = [best_group(groups) for groups in by_parent.values()]
    names = {id(row.group): row.recipe for row in rows}
    if len(bests) < 2 or bests[0] is None:
        return []
    first = bests[0]
    lines = []
    for other in bests[1:]:
        if other is None:
            continue
        a, b = (Group(g.values, g.runs, names[id(g)]) for g in (first, other))
        lines.append(paired_comparison(a, b).text)
    return lines
