"""A search's part of the report (conf/sweep/search.yaml: Optuna's TPE over the learning
rate, weight decay and batch size): its history and its best configuration.

    search_history.png   each trial's test accuracy against the trial number, and the
                         best accuracy so far (the running maximum)
    search_history.csv   the same, one row per trial, with the values it tried
    best_config.txt      the best trial's configuration as a ready-to-run command line

A trial is a child run of the sweep's parent, numbered by its job (tags.JOB_NUM); a trial
that failed (a diverged loss) has no test accuracy and leaves the best so far unchanged.
"""

from __future__ import annotations

import csv
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.reporting.collect import RunSummary
from experiments.tracking import tags

SEARCHED = ("optim.lr", "optim.weight_decay", "trainer.batch_size")


@dataclass
class Trial:
    """One trial of a search: its number, run, outcome and the best accuracy up to it."""

    number: int
    run: RunSummary
    best_so_far: float  # NaN until a trial has a test accuracy

    @property
    def accuracy(self) -> float:
        return math.nan if self.run.test_acc is None else self.run.test_acc


def trials(runs: Sequence[RunSummary]) -> list[Trial]:
    """The search's trials in the order they ran, with the running best test accuracy."""
    ordered = sorted(runs, key=lambda r: int(r.tags.get(tags.JOB_NUM, "0")))
    out, best = [], math.nan
    for r in ordered:
        if r.test_acc is not None and not (r.test_acc <= best):  # NaN best: first one
            best = r.test_acc
        out.append(Trial(int(r.tags.get(tags.JOB_NUM, len(out))), r, best))
    return out


def best_trial(history: Sequence[Trial]) -> Trial | None:
    """The trial with the highest test accuracy (the earliest of equals), if any has one."""
    scored = [t for t in history if t.run.test_acc is not None]
    return max(scored, key=lambda t: (t.accuracy, -t.number)) if scored else None


def rerun_command(trial: Trial, sweep: str) -> str:
    """`python -m experiments.train ...` training the trial's configuration once.

    The preset keeps its fixed choices (model, data size, epochs); hydra.mode=RUN makes it
    one run instead of a search. The trial's overrides (tags.OVERRIDES) give the rest.
    """
    overrides = [o for o in trial.run.tags.get(tags.OVERRIDES, "").split()
                 if not o.startswith(("sweep=", "hydra.mode="))]
    words = ["python", "-m", "experiments.train", f"sweep={sweep}", "hydra.mode=RUN",
             *overrides]
    return " ".join(shlex.quote(w) for w in words)


def history_figure(history: Sequence[Trial]) -> Figure:
    """Test accuracy of each trial (dots; failed trials as crosses at the bottom) and the
    best so far (a step line) against the trial number."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    numbers = np.array([t.number for t in history])
    accuracy = np.array([t.accuracy for t in history])
    ok = np.isfinite(accuracy)
    ax.plot(numbers[ok], accuracy[ok], "o", color="C0", label="trial's test accuracy")
    if (~ok).any():
        ax.plot(numbers[~ok], np.zeros((~ok).sum()), "x", color="C3", ms=8,
                label="failed trial (diverged)")
    ax.step(numbers, [t.best_so_far for t in history], where="post", color="C1", lw=2,
            label="best so far")
    best = best_trial(history)
    top = 1.0
    if best is not None:
        ax.annotate(f"best {best.accuracy:.3f}", (best.number, best.accuracy),
                    textcoords="offset points", xytext=(6, 6), fontsize=9)
        top = min(1.0, 1.2 * best.accuracy)  # room for the label under the title
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"search: {len(history)} trials")
    return fig


def write_search_report(runs: Sequence[RunSummary], out: Path, sweep: str) -> tuple[
        dict[str, Figure], str]:
    """Write the history table and the best command into `out`; return the figures to
    save and the markdown section for summary.md."""
    history = trials(runs)
    with open(out / "search_history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "run", "status", "test_acc", "best_so_far", *SEARCHED])
        for t in history:
            writer.writerow([t.number, t.run.name, t.run.status, _number(t.accuracy),
                             _number(t.best_so_far), *(t.run.params.get(k, "") for k in SEARCHED)])
    best = best_trial(history)
    lines = ["## Search", "", f"{len(history)} trials."]
    if best is None:
        (out / "best_config.txt").write_text("no trial finished with a test accuracy\n")
        lines.append("No trial finished with a test accuracy.")
    else:
        command = rerun_command(best, sweep)
        values = ", ".join(f"{k}={best.run.params.get(k, '?')}" for k in SEARCHED)
        (out / "best_config.txt").write_text(
            f"# best trial {best.number} (run {best.run.name}, {best.run.run_id}): "
            f"test accuracy {best.accuracy:.4f}\n# {values}\n{command}\n")
        lines += [f"Best: trial {best.number}, test accuracy {best.accuracy:.4f} ({values}).",
                  "", "Train it again:", "", "```", command, "```"]
    return {"search_history.png": history_figure(history)}, "\n".join([*lines, ""])


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"
