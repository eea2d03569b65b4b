"""A search's part of the report (conf/sweep/search.yaml: Optuna's TPE over the learning
rate, weight decay and batch size): its history and its best configuration.

    search_history.png   each trial's test accuracy against the trial number, and the
                         best accuracy so far (the running maximum)
    search_history.csv   the same, one row per trial, with the values it tried
    best_config.txt      the best trial's configuration as a ready-to-run command line

A trial is a child run of the sweep's parent, numbered by its job (tags.JOB_NUM); a trial
that failed (a diverged loss) has no test accuracy and leaves the best so far unchanged.
With search.seeds > 1 a trial's test accuracy is the mean over its seeds, the objective
the search maximised (a diverged seed counted 0, experiments.sweeps.trial), and the table
adds its n seeds, their standard deviation and the 95% interval's half-width; its seed
runs are not trials.
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

    @property
    def seeds(self) -> int:
        """The seeds its accuracy is the mean of (1 for a trial that is one run)."""
        return int(self.run.metrics.get("seeds", 1)) if self.run.is_trial else 1

    def spread(self, key: str) -> float:
        """test_acc_sd or test_acc_ci95 over its seeds; NaN for a trial of one seed."""
        return self.run.metrics.get(key, math.nan) if self.run.is_trial else math.nan


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
    one run instead of a search. The trial's overrides (tags.OVERRIDES) give the rest,
    but search.seeds: the command trains one seed (trainer.seed), not all of a trial's.
    """
    overrides = [o for o in trial.run.tags.get(tags.OVERRIDES, "").split()
                 if not o.startswith(("sweep=", "hydra.mode=", "search.seeds="))]
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
    ci = np.array([t.spread("test_acc_ci95") for t in history])
    if np.isfinite(ci[ok]).any():  # trials over seeds: their mean and its 95% interval
        ax.errorbar(numbers[ok], accuracy[ok], yerr=np.nan_to_num(ci[ok]), fmt="o",
                    color="C0", capsize=3,
                    label=f"trial's mean test accuracy ({history[0].seeds} seeds, 95% CI)")
    else:
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
        # Room for the label under the title, and for the intervals' upper ends.
        top = min(1.0, 1.2 * max(best.accuracy, *(accuracy[ok] + np.nan_to_num(ci[ok]))))
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
        writer.writerow(["trial", "run", "status", "test_acc", "n_seeds", "test_acc_sd",
                         "test_acc_ci95", "best_so_far", *SEARCHED])
        for t in history:
            writer.writerow([t.number, t.run.name, t.run.status, _number(t.accuracy), t.seeds,
                             _number(t.spread("test_acc_sd")),
                             _number(t.spread("test_acc_ci95")), _number(t.best_so_far),
                             *(t.run.params.get(k, "") for k in SEARCHED)])
    best = best_trial(history)
    over = [t for t in history if t.run.is_trial]
    lines = ["## Search", "", f"{len(history)} trials."]
    if over:
        lines[-1] += (f" Each trial's test accuracy is the mean over its {over[0].seeds} "
                      f"seeds ({over[0].run.seed}, the same in every trial; a diverged "
                      "seed counts 0), which the search maximised.")
    if best is None:
        (out / "best_config.txt").write_text("no trial finished with a test accuracy\n")
        lines.append("No trial finished with a test accuracy.")
    else:
        command = rerun_command(best, sweep)
        values = ", ".join(f"{k}={best.run.params.get(k, '?')}" for k in SEARCHED)
        accuracy = f"test accuracy {best.accuracy:.4f}"
        if best.run.is_trial:
            accuracy = (f"mean test accuracy {best.accuracy:.4f} ± "
                        f"{best.spread('test_acc_ci95'):.4f} (95% CI, seeds {best.run.seed})")
        (out / "best_config.txt").write_text(
            f"# best trial {best.number} (run {best.run.name}, {best.run.run_id}): "
            f"{accuracy}\n# {values}\n{command}\n")
        lines += [f"Best: trial {best.number}, {accuracy} ({values}).",
                  "", "Train it again:", "", "```", command, "```"]
    return {"search_history.png": history_figure(history)}, "\n".join([*lines, ""])


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"
