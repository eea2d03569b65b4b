"""Compare the runs of a sweep: learning curves and final accuracy against training-set size.

    python -m experiments.report                      # the latest sweep in the store
    python -m experiments.report --parent <run_id>    # a given sweep's parent run
    python -m experiments.report --out reports/x --no-log

Writes into --out (default reports/<parent_run_id>/), and logs to the parent run under
report/ unless --no-log:
    learning_curves_loss.png   training loss per epoch; one panel per (initialisation,
                               learning rate), one colour per training-set size
    learning_curves_acc.png    the same for validation accuracy (training accuracy if the
                               sweep had no validation split)
    accuracy_vs_size.png       final test accuracy against training-set size, one panel
                               per learning rate, one line per initialisation (mean and
                               spread over seeds when there are several)
    summary.md, summary.csv    one row per run: its choices, status, final metrics and
                               diagnosis; summary.md then lists the runs that did not
                               converge, with what happened and their diagnosis
`make sweep` runs this at the end of the sweep (experiments.callbacks.SweepTracking).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments import tracking

CURVE_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


@dataclass
class RunSummary:
    """One child run of a sweep, as the report needs it."""

    run_id: str
    name: str
    status: str
    init: str
    lr: float
    n_train: str  # "all" or a number, as logged
    seed: str
    curves: dict[str, list[float]] = field(default_factory=dict)  # metric -> value per epoch
    test_acc: float | None = None
    test_loss: float | None = None
    failure: str = ""
    health: str = ""  # the pre-training diagnosis: pass | warn | fail (experiments.diagnose)
    health_cause: str = ""  # its most likely cause in plain words

    @property
    def size(self) -> float:
        return _size(self.n_train)


def _size(n_train: str) -> float:
    """n_train as logged, as a number for sorting and plotting ("all" sorts last)."""
    return math.inf if n_train in ("all", "None") else float(n_train)


def collect_runs(parent_run_id: str) -> list[RunSummary]:
    """The child runs of a sweep's parent run, with their per-epoch metric series."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=5000,
    )
    summaries = []
    for run in runs:
        p, m = run.data.params, run.data.metrics
        summary = RunSummary(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id,
            status=run.info.status,
            init=p.get("init.name", "?"),
            lr=float(p.get("optim.lr", "nan")),
            n_train=p.get("data.n_train", "all"),
            seed=p.get("trainer.seed", "0"),
            test_acc=m.get("test_acc"),
            test_loss=m.get("test_loss"),
            failure=run.data.tags.get(tracking.TAG_FAILURE_REASON, ""),
            health=run.data.tags.get("health", ""),
            health_cause=run.data.tags.get("health_cause", ""),
        )
        for key in CURVE_METRICS:
            if key in m:
                history = sorted(client.get_metric_history(run.info.run_id, key),
                                 key=lambda metric: metric.step)
                summary.curves[key] = [metric.value for metric in history]
        summaries.append(summary)
    return summaries


def _ordered(values: Sequence) -> list:
    """Distinct values in first-seen order (the sweep's own order for names)."""
    return list(dict.fromkeys(values))


def curves_figure(runs: Sequence[RunSummary], metric: str, ylabel: str, log_y: bool) -> Figure:
    """One panel per (initialisation, learning rate); one colour per training-set size."""
    inits = _ordered(r.init for r in runs)
    lrs = sorted(_ordered(r.lr for r in runs))
    sizes = sorted(_ordered(r.n_train for r in runs), key=_size)
    colours = {s: f"C{i}" for i, s in enumerate(sizes)}
    fig = Figure(figsize=(3.6 * len(lrs) + 1, 2.8 * len(inits) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(inits), len(lrs), sharex=True, sharey=True,
                                      squeeze=False))
    for i, init in enumerate(inits):
        for j, lr in enumerate(lrs):
            ax = axes[i, j]
            ax.set_title(f"{init}, lr {lr:g}", fontsize=9)
            ax.grid(alpha=0.3)
            for run in runs:
                if run.init != init or run.lr != lr or metric not in run.curves:
                    continue
                values = np.asarray(run.curves[metric], dtype=float)
                values = np.where(np.isfinite(values), values, np.nan)
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, "-o", ms=2, lw=1, color=colours[run.n_train],
                        label=f"n={run.n_train}")
                if run.status != "FINISHED":  # where it stopped, and why (see the table)
                    ax.plot(epochs[-1:], values[-1:], "x", ms=8, color=colours[run.n_train])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if log_y:
                ax.set_yscale("log")
            if i == len(inits) - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(ylabel)
    handles, labels = [], []
    for ax in axes.ravel():  # one legend entry per size, whichever panel has it
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", title="training images")
    fig.suptitle(f"{ylabel} per epoch (x: run stopped early)")
    return fig


def accuracy_vs_size_figure(runs: Sequence[RunSummary]) -> Figure:
    """Final test accuracy against n_train: one panel per lr, one line per initialisation."""
    inits = _ordered(r.init for r in runs)
    lrs = sorted(_ordered(r.lr for r in runs))
    fig = Figure(figsize=(3.8 * len(lrs) + 1, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(lrs), sharey=True, squeeze=False)).ravel()
    for ax, lr in zip(axes, lrs, strict=True):
        for k, init in enumerate(inits):
            by_size: dict[float, list[float]] = defaultdict(list)
            for run in runs:
                if run.init == init and run.lr == lr and run.test_acc is not None:
                    by_size[run.size].append(run.test_acc)
            sizes = sorted(s for s in by_size if math.isfinite(s))
            if not sizes:
                continue
            means = [np.mean(by_size[s]) for s in sizes]
            spread = [np.std(by_size[s]) for s in sizes]
            ax.errorbar(sizes, means, yerr=spread if max(spread) > 0 else None, fmt="-o",
                        ms=4, capsize=3, color=f"C{k}", label=init)
        ax.set_xscale("log", base=2)
        sizes_here = sorted({r.size for r in runs if r.lr == lr and math.isfinite(r.size)})
        ax.set_xticks(sizes_here, [f"{s:g}" for s in sizes_here])  # the sizes, not powers of 2
        ax.minorticks_off()
        ax.set_title(f"lr {lr:g}", fontsize=9)
        ax.set_xlabel("training images")
        ax.grid(alpha=0.3)
        ax.axhline(0.1, color="grey", lw=0.8, ls=":")  # chance level for ten classes
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1)
    for ax in axes:  # the legend goes in the first panel that has lines
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="initialisation", fontsize=8)
            break
    fig.suptitle("final test accuracy (dotted: chance); runs that failed have no point")
    return fig


def _last(values: list[float] | None) -> str:
    return "" if not values else f"{values[-1]:.4g}"


def summary_rows(runs: Sequence[RunSummary]) -> list[dict[str, str]]:
    rows = []
    for r in sorted(runs, key=lambda r: (r.init, r.lr, r.size, r.seed)):
        rows.append({
            "run": r.name, "init": r.init, "lr": f"{r.lr:g}", "n_train": r.n_train,
            "seed": r.seed, "status": r.status,
            "epochs": str(len(r.curves.get("train_loss", []))),
            "train_loss": _last(r.curves.get("train_loss")),
            "val_acc": _last(r.curves.get("val_acc")),
            "test_acc": "" if r.test_acc is None else f"{r.test_acc:.4f}",
            "health": r.health,
            "note": r.failure[:80],
        })
    return rows


def not_converged(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs that failed, were killed, or reached less than half the sweep's best test accuracy.

    Judged against the best run rather than chance, so it needs no class count.
    """
    finished = [r.test_acc for r in runs if r.status == "FINISHED" and r.test_acc is not None]
    bar = 0.5 * max(finished, default=0.0)
    return [r for r in runs
            if r.status != "FINISHED" or r.test_acc is None or r.test_acc < bar]


def diagnosis_section(runs: Sequence[RunSummary]) -> str:
    """Markdown: each run that did not converge, what happened, and its diagnosis."""
    stuck = not_converged(runs)
    lines = ["## Runs that did not converge, and why", ""]
    if not stuck:
        return "\n".join([*lines, "Every run converged.", ""])
    for r in sorted(stuck, key=lambda r: (r.init, r.lr, r.size, r.seed)):
        outcome = r.failure or (f"test accuracy {r.test_acc:.3f}" if r.test_acc is not None
                                else "no test accuracy")
        cause = r.health_cause if r.health_cause not in ("", "-") else "no cause found"
        lines.append(f"- **{r.name}** ({r.status}): {outcome}. "
                     f"Diagnosis before training: {r.health or '?'}, {cause}.")
    return "\n".join([*lines, ""])


def markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(no runs)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(row[k].replace("|", "/") for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(parent_run_id: str, out_dir: str | Path, log_to_parent: bool = True) -> str:
    """Write the figures and tables for a sweep into out_dir; return a one-line summary.

    With log_to_parent, they are also logged to the parent run under report/.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(parent_run_id)
    has_val = any("val_acc" in r.curves for r in runs)
    figures = {
        "learning_curves_loss.png": curves_figure(runs, "train_loss", "training loss", True),
        "learning_curves_acc.png": curves_figure(
            runs, "val_acc" if has_val else "train_acc",
            "validation accuracy" if has_val else "training accuracy", False),
        "accuracy_vs_size.png": accuracy_vs_size_figure(runs),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    rows = summary_rows(runs)
    counts = defaultdict(int)
    for r in runs:
        counts[r.status] += 1
    summary = f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    (out / "summary.md").write_text(f"# Sweep {parent_run_id}\n\n{summary}\n\n"
                                    + markdown_table(rows) + "\n" + diagnosis_section(runs))
    with open(out / "summary.csv", "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if log_to_parent:
        client = mlflow.MlflowClient()
        for path in sorted(out.iterdir()):
            client.log_artifact(parent_run_id, str(path), "report")
    return summary


def latest_sweep(experiment: str) -> str:
    """The run id of the most recent sweep parent run in the experiment."""
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {mlflow.get_tracking_uri()}")
    runs = mlflow.MlflowClient().search_runs(
        [exp.experiment_id], filter_string="tags.sweep_dir LIKE '%'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"no sweep in experiment {experiment!r}; run `make sweep` first")
    return runs[0].info.run_id


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", help="the sweep's parent run id (default: the latest)")
    parser.add_argument("--experiment", default="cifar10-cnn")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    parser.add_argument("--out", default=None, help="default: reports/<parent run id>")
    parser.add_argument("--no-log", action="store_true", help="do not log to the parent run")
    args = parser.parse_args(argv)
    mlflow.set_tracking_uri(tracking.resolve_tracking_uri(args.tracking_uri))
    parent = args.parent or latest_sweep(args.experiment)
    out = Path(args.out or Path("reports") / parent)
    summary = write_report(parent, out, log_to_parent=not args.no_log)
    print(f"sweep {parent}: {summary}")
    print((out / "summary.md").read_text())
    print(f"figures and tables in {out}/")


if __name__ == "__main__":
    main()
