"""What a sweep ends on in the terminal, and the summary metrics of its parent run.

The report (experiments.reporting.summary) is files; this is the few lines a person reads
when `make sweep` returns: the runs ranked by test accuracy (the best and worst few), the
runs that did not converge with their diagnosis, where the report is and the links that
open the sweep in MLflow's UI. The same numbers are logged as the parent run's metrics, so
the UI charts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments.reporting.collect import (
    RunSummary,
    diagnosis,
    not_converged,
    outcome_and_cause,
)
from experiments.tracking.ui import link_lines

SHOWN = 3  # best and worst runs listed; all of them when there are at most 2 * SHOWN
MAX_NOT_CONVERGED = 10  # more are counted, and listed in summary.md


def parent_metrics(runs: Sequence[RunSummary], wall_time_s: float) -> dict[str, float]:
    """The sweep's summary metrics, logged on its parent run."""
    accuracies = [r.test_acc for r in runs if r.status == "FINISHED" and r.test_acc is not None]
    metrics = {
        "runs": float(len(runs)),
        "runs_finished": float(sum(r.status == "FINISHED" for r in runs)),
        "runs_failed": float(sum(r.status == "FAILED" for r in runs)),
        "runs_killed": float(sum(r.status == "KILLED" for r in runs)),
        "runs_not_converged": float(len(not_converged(runs))),
        "sweep_wall_time_s": round(wall_time_s, 1),
    }
    if accuracies:
        metrics["best_test_acc"] = max(accuracies)
        metrics["mean_test_acc"] = sum(accuracies) / len(accuracies)
    return metrics


def duration(seconds: float) -> str:
    """1h 02m 03s, 4m 05s, 6s."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def ranking_lines(runs: Sequence[RunSummary], shown: int = SHOWN) -> list[str]:
    """The runs with a test accuracy, best first: all, or the best and worst `shown`."""
    ranked = sorted((r for r in runs if r.test_acc is not None),
                    key=lambda r: (-r.test_acc, r.name))
    if not ranked:
        return ["No run reached a test accuracy."]
    width = len(str(len(ranked)))

    def line(rank: int, r: RunSummary) -> str:
        status = "" if r.status == "FINISHED" else f"  ({r.status})"
        return f"  {rank:>{width}}. {r.test_acc:.4f}  {r.name}{status}"

    if len(ranked) <= 2 * shown:
        return ["Runs by test accuracy:",
                *(line(i, r) for i, r in enumerate(ranked, 1))]
    hidden = len(ranked) - 2 * shown
    return [f"Runs by test accuracy (best and worst {shown} of {len(ranked)}):",
            *(line(i, r) for i, r in enumerate(ranked[:shown], 1)),
            f"  {'':>{width}}  ... {hidden} more in summary.md",
            *(line(i, r) for i, r in enumerate(ranked[-shown:], len(ranked) - shown + 1))]


def not_converged_lines(runs: Sequence[RunSummary],
                        limit: int = MAX_NOT_CONVERGED) -> list[str]:
    """Each run that did not converge: what happened during training, and its diagnosis
    before training."""
    stuck = sorted(not_converged(runs), key=lambda r: (r.init, r.lr, r.size, r.seed))
    if not stuck:
        return ["Every run converged."]
    lines = [f"Did not converge ({len(stuck)} of {len(runs)}), with what happened during "
             "training and the diagnosis before it:"]
    for r in stuck[:limit]:
        outcome, _ = outcome_and_cause(r)
        lines.append(f"  - {r.name} ({r.status}): {outcome}. Diagnosis: {diagnosis(r)}.")
    if len(stuck) > limit:
        lines.append(f"  ... {len(stuck) - limit} more in summary.md")
    return lines


def sweep_overview(sweep: str, summary: str, runs: Sequence[RunSummary], wall_time_s: float,
                   report_dir: Path, parent_run_id: str, links: dict[str, str],
                   ui_hint: str) -> str:
    """The text a sweep ends on. `links` maps what a link opens to the link; `ui_hint` says
    how to get the UI they open."""
    lines = [f"Sweep {sweep} done in {duration(wall_time_s)}: {summary}.",
             *ranking_lines(runs), *not_converged_lines(runs),
             f"Report: {report_dir.resolve()}/ (summary.md, summary.csv, figures),",
             f"  also in the artifacts (report/) of the parent run {parent_run_id},",
             "  whose metrics are the sweep's: best_test_acc, runs_finished, runs_failed, ...",
             f"Open it in MLflow's UI ({ui_hint}):", *link_lines(links)]
    return "\n".join(lines)
