"""Seeds as replicates: a sweep's runs that differ only in trainer.seed form a group, and
each group's final metrics are summarised by n, mean, standard deviation and a 95%
confidence interval (Student t), so that two settings are compared on their spread over
seeds rather than on one lucky run each.

    groups.csv   one row per group: the keys that tell the groups apart (not the seed),
                 n, the seeds, and for test_acc and test_loss the mean, the standard
                 deviation and ci95, the half-width of the 95% interval (empty when n < 2)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiments.reporting.collect import RunSummary
from experiments.tracking import swept

METRICS = ("test_acc", "test_loss")


@dataclass
class Stats:
    """One metric over a group's seeds; sd and ci95 are nan for fewer than 2 values."""

    n: int
    mean: float
    sd: float
    ci95: float  # half-width of the 95% Student-t interval of the mean


def describe(values: Sequence[float]) -> Stats:
    n = len(values)
    if n == 0:
        return Stats(0, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n < 2:
        return Stats(n, mean, math.nan, math.nan)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Stats(n, mean, sd, half_width(sd, n))


def half_width(sd: float, n: int) -> float:
    """The 95% interval's half-width for the mean of n values of standard deviation sd."""
    # Imported here, not at the top: scipy loads its own OpenBLAS, and a sweep's jobs run
    # in the process that imports this module (the basic launcher), where it would then
    # be the BLAS that the runs' blas tag reports. The report comes after the jobs.
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


@dataclass
class Group:
    """Runs that differ only in their seed; `values` are the keys that tell it from the
    other groups, `runs` its runs in seed order."""

    values: dict[str, str]
    runs: list[RunSummary] = field(default_factory=list)
    name: str = ""  # a label of its own (a recipe's), instead of its values'

    @property
    def label(self) -> str:
        return self.name or swept.label(self.values, list(self.values)) or "all runs"

    def by_seed(self, metric: str) -> dict[str, float]:
        """The metric of each seed's run that logged a finite one."""
        found = {}
        for r in self.runs:
            value = getattr(r, metric)
            if value is not None and math.isfinite(value):
                found[r.seed] = value
        return found

    def stats(self, metric: str) -> Stats:
        return describe(list(self.by_seed(metric).values()))


def _identity(r: RunSummary) -> tuple[tuple[str, str], ...]:
    # Every logged param but the seed: the whole resolved config, so runs group only when
    # nothing else differs (a rate found per seed by lr_find.apply keeps them apart); and
    # the swept values, which say the same of runs read back without their params.
    return tuple(sorted([(f"param:{k}", v) for k, v in r.params.items() if k != swept.SEED_KEY]
                        + [(f"swept:{k}", v) for k, v in r.swept.items()
                           if k != swept.SEED_KEY]))


def seed_groups(runs: Sequence[RunSummary]) -> list[Group]:
    """The runs grouped by everything but trainer.seed, in the sweep's order.

    A group is named by the swept keys (tags.SWEPT) but the seed when its runs have them,
    else by the params that differ between groups."""
    grouped: dict[tuple, Group] = {}
    for r in runs:
        grouped.setdefault(_identity(r), Group({})).runs.append(r)
    groups = list(grouped.values())
    tagged = all(r.swept for r in runs)
    if tagged:
        keys = [k for k in dict.fromkeys(k for r in runs for k in r.swept) if k != swept.SEED_KEY]
        pick = lambda r: r.swept  # noqa: E731 (a one-line choice of where values come from)
    else:
        everything = list(dict.fromkeys(k for r in runs for k in r.params))
        keys = [k for k in everything if k != swept.SEED_KEY]
        pick = lambda r: r.params  # noqa: E731
    firsts = [g.runs[0] for g in groups]
    keys = [k for k in keys if len({pick(r).get(k, "") for r in firsts}) > 1]
    for g in groups:
        g.values = {k: pick(g.runs[0]).get(k, "") for k in keys}
        g.runs.sort(key=lambda r: (len(r.seed), r.seed))  # 2 before 10
    return groups


def best_group(groups: Sequence[Group]) -> Group | None:
    """The group with the highest mean test accuracy, None if no run has one."""
    scored = [g for g in groups if g.stats("test_acc").n > 0]
    return max(scored, key=lambda g: g.stats("test_acc").mean, default=None)


def _number(value: float) -> str:
    return "" if math.isnan(value) else repr(value)  # every digit: the file is for reading back


def group_rows(groups: Sequence[Group]) -> list[dict[str, str]]:
    rows = []
    for g in groups:
        row = {**g.values, "n": str(g.stats("test_acc").n),
               "seeds": " ".join(g.by_seed("test_acc"))}
        for metric in METRICS:
            s = g.stats(metric)
            row |= {f"{metric}_mean": _number(s.mean), f"{metric}_sd": _number(s.sd),
                    f"{metric}_ci95": _number(s.ci95)}
        rows.append(row)
    return rows


def write_groups_csv(groups: Sequence[Group], path: Path) -> None:
    rows = group_rows(groups)
    with open(path, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def mean_and_ci(s: Stats, scale: float = 1.0, digits: int = 4) -> str:
    """"0.4213 ± 0.0123", or the mean alone for a single run."""
    if s.n == 0:
        return "-"
    if s.n < 2:
        return f"{s.mean * scale:.{digits}f}"
    return f"{s.mean * scale:.{digits}f} ± {s.ci95 * scale:.{digits}f}"


def groups_section(groups: Sequence[Group]) -> str:
    """Markdown: each group's n and its metrics as mean ± 95% CI half-width."""
    lines = ["## Seeds as replicates", "",
             "Runs that differ only in `trainer.seed`, as one group each: mean ± the "
             "half-width of the 95% confidence interval (Student t) over its seeds "
             "(groups.csv has the standard deviations).", "",
             "| group | n | test_acc | test_loss |", "|---|---|---|---|"]
    for g in groups:
        lines.append(f"| {g.label.replace('|', '/')} | {g.stats('test_acc').n} "
                     f"| {mean_and_ci(g.stats('test_acc'))} "
                     f"| {mean_and_ci(g.stats('test_loss'))} |")
    return "\n".join([*lines, ""])


def best_group_metrics(groups: Sequence[Group]) -> tuple[dict[str, float], str | None]:
    """The parent run's metrics of the best group (mean, ci95 when it has 2 seeds or
    more, n), and the group's name for its tag; ({}, None) when no run has a test_acc."""
    best = best_group(groups)
    if best is None:
        return {}, None
    metrics = {"best_group_n": float(best.stats("test_acc").n)}
    for metric in METRICS:
        s = best.stats(metric)
        if s.n:
            metrics[f"best_group_{metric}_mean"] = s.mean
        if s.n >= 2:
            metrics[f"best_group_{metric}_ci95"] = s.ci95
    return metrics, best.label
