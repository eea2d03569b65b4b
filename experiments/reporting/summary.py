"""A sweep's comparison report, written into a folder and logged to its parent run under
report/:
    learning_curves_loss.png   training (solid) and validation (dashed) loss per epoch;
                               one panel per (initialisation, learning rate), one colour
                               per seed group (mean of its seeds, min-max band), an x
                               where a run stopped; a log axis the converged runs set
    learning_curves_acc.png    the same for validation accuracy (training accuracy if the
                               sweep had no validation split)
    accuracy_by_group.png      final test accuracy per seed group: its seeds, their mean
                               and 95% CI (experiments.reporting.figures)
    accuracy_vs_size.png       final test accuracy against training-set size, one panel
                               per learning rate, one line per initialisation (mean and
                               95% CI over seeds); only when the sweep has two sizes or
                               more, which summary.md says
    summary.md, summary.csv    one row per run (per trial of a search over replicates, its
                               seeds' mean): its choices (every key the sweep varies),
                               status, final metrics, diagnosis before training and what
                               its training diagnosis found (summary.md in tables of at
                               most 7 columns, for MLflow's artifact view); summary.md then
                               states when a run converged, lists the runs that did not,
                               with what happened during training and their diagnosis
                               before it (reporting.training_diagnosis), and the seed
                               groups (below)
    groups.csv                 runs that differ only in their seed, one row per group:
                               n, mean, sd and 95% CI of test_acc and test_loss (groups)
                               summary.md then compares the best group with each other,
                               paired by seed (compare)
    accuracy_vs_depth.png,     for a sweep over depths (conf/sweep/depth.yaml): see
    gradient_flow.png          experiments.reporting.depth; summary.md then has its table
    search_history.png/.csv,   for a search (conf/sweep/search.yaml, Optuna): see
    best_config.txt            experiments.reporting.search; summary.md then has its best
    stability.png              for runs that measured their sharpness (trainer.sharpness_every,
                               conf/sweep/stability.yaml): see experiments.reporting.stability
    learning_curve.png/.csv    for a sweep over data.n_train: test error against size,
                               fitted as a + b·n^-c with bootstrap CIs, extrapolated to
                               50,000 images (experiments.reporting.learning_curve)
    noise_scale.png            for a sweep over trainer.batch_size with
                               trainer.noise_scale=true: steps to a target accuracy
                               beside the gradient noise scale (noise_scale); summary.md
                               then has its table
`make sweep` writes it at the end of the sweep (experiments.sweeps.tracking), and
`python -m experiments.report` at any time.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from PIL import Image

from cnn.diagnostics.trajectory import CONVERGENCE_RULE
from experiments.reporting import compare, depth, groups, search, stability
from experiments.reporting import learning_curve as lc
from experiments.reporting import learning_curve_report as lc_report
from experiments.reporting import noise_scale as noise
from experiments.reporting.collect import (
    RunSummary,
    collect_runs,
    diagnosis,
    extra_keys,
    not_converged,
    outcome_and_cause,
    trained_runs,
)
from experiments.reporting.figures import sweep_figures
from experiments.tracking import disk, swept, tags


def _last(values: list[float] | None) -> str:
    return "" if not values else f"{values[-1]:.4g}"


def summary_rows(runs: Sequence[RunSummary]) -> list[dict[str, str]]:
    """One row per run; after its init, lr, n_train and seed, a column per other key the
    sweep varies (trainer.batch_size, optim, ...), so that no two rows read the same. A
    search trial over replicates is one row: its seeds, their number n, and test_acc their
    mean."""
    extra = extra_keys(runs, swept.FIGURE_KEYS)
    trials = any(r.is_trial for r in runs)  # a search over replicates: n, its seed runs
    rows = []
    for r in sorted(runs, key=lambda r: (r.init, r.lr, r.size,
                                         *(r.swept.get(k, "") for k in extra), r.seed)):
        rows.append({
            "run": r.name, "init": r.init, "lr": f"{r.lr:g}", "n_train": r.n_train,
            "seed": r.seed, **{k: r.swept.get(k, "") for k in extra}, "status": r.status,
            **({"n": str(len(r.replicates))} if trials else {}),
            "epochs": "" if r.is_trial else str(len(r.curves.get("train_loss", []))),
            "train_loss": _last(r.curves.get("train_loss")),
            "val_acc": _last(r.curves.get("val_acc")),
            "test_acc": "" if r.test_acc is None else f"{r.test_acc:.4f}",
            "health": r.health,
            "training": r.training.causes,  # what its training diagnosis found
            "note": r.failure[:80],
        })
    return rows


def diagnosis_section(runs: Sequence[RunSummary]) -> str:
    """Markdown: the rule, then each run that did not converge, what happened during
    training and its diagnosis before training."""
    stuck = not_converged(runs)
    lines = ["## Runs that did not converge, and why", "",
             f"By this report's rule, {CONVERGENCE_RULE}.", ""]
    if not stuck:
        return "\n".join([*lines, "Every run converged.", ""])
    for r in sorted(stuck, key=lambda r: (r.init, r.lr, r.size, r.seed)):
        outcome, _ = outcome_and_cause(r)
        lines.append(f"- **{r.name}** ({r.status}): {outcome}. "
                     f"Diagnosis before training: {diagnosis(r)}.")
    return "\n".join([*lines, ""])


# Columns of summary_rows after the run's choices: how it ended.
OUTCOME = ("status", "epochs", "train_loss", "val_acc", "test_acc", "health", "note")
MAX_COLUMNS = 7  # what MLflow's artifact view shows unsqueezed beside its file tree


def markdown_table(rows: list[dict[str, str]], keys: Sequence[str] | None = None,
                   labels: dict[str, str] | None = None) -> str:
    if not rows:
        return "(no runs)\n"
    keys = list(rows[0]) if keys is None else list(keys)
    labels = labels or {}
    lines = ["| " + " | ".join(labels.get(k, k) for k in keys) + " |",
             "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(row[k].replace("|", "/") for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_tables(rows: list[dict[str, str]]) -> str:
    """summary_rows as markdown tables of at most MAX_COLUMNS columns, each led by the run:
    its choices, then how it ended; columns empty in every row are left out (summary.csv
    has them all). One table of 13 or more columns is squeezed unreadable in the UI."""
    if not rows:
        return markdown_table(rows)
    shown = [k for k in rows[0] if k == "run" or any(row[k] for row in rows)]
    choices = [k for k in shown if k != "run" and k not in OUTCOME]
    outcome = [k for k in shown if k in OUTCOME]
    width = MAX_COLUMNS - 1
    parts = [choices[i:i + width] for i in range(0, len(choices), width)]
    parts += [outcome[i:i + width] for i in range(0, len(outcome), width)]
    labels = swept.short_names(shown)  # trainer.batch_size as batch_size: narrower
    return "\n".join(markdown_table(rows, ["run", *part], labels) for part in parts if part)


@dataclass
class SweepReport:
    """A written report: its folder, its one-line summary ("N runs: ..."), and the runs."""

    out_dir: Path
    summary: str
    runs: list[RunSummary]
    groups: list[groups.Group] = field(default_factory=list)
    curves: list[lc.LearningCurve] = field(default_factory=list)


class EmptySweepError(LookupError):
    """The sweep has no run to report on (each job was refused or failed before its run)."""


def write_report(parent_run_id: str, out_dir: str | Path,
                 log_to_parent: bool = True) -> SweepReport:
    """Write the figures and tables for a sweep into out_dir.

    With log_to_parent, they are also logged to the parent run under report/, and each
    figure as an image of the run (MLflow's images, key = the figure's name), which the
    UI shows in the run's charts, not only as a file among its artifacts. A full disk
    raises DiskFullError naming out_dir (and the parent's artifact folder).
    """
    try:
        return _write_report(parent_run_id, Path(out_dir), log_to_parent)
    except Exception as e:
        if not disk.is_disk_full(e):
            raise
        places = [out_dir, *([disk.artifact_place(parent_run_id, "report")]
                             if log_to_parent else [])]
        raise disk.disk_full_error(
            e, f"the report of sweep {parent_run_id}", places,
            f"Free space there, then `python -m experiments.report --parent {parent_run_id}` "
            "writes it again.") from e


def _write_report(parent_run_id: str, out: Path, log_to_parent: bool) -> SweepReport:
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(parent_run_id)
    if not runs:
        raise EmptySweepError(f"sweep {parent_run_id} has no runs to report on: each job was "
                              "refused or failed before its run started (see the jobs' logs)")
    # A search's trials over replicates are the sweep's runs, as the mean of their seeds;
    # the figures and seed groups are of the seed runs that trained.
    trained = trained_runs(runs)
    figures, figures_note = sweep_figures(trained)
    depth_section = ""
    if depth.is_depth_study(runs):
        study = depth.collect_depth_runs(runs)
        figures["accuracy_vs_depth.png"] = depth.accuracy_vs_depth_figure(study)
        figures["gradient_flow.png"] = depth.gradient_flow_figure(study)
        depth_section = "\n" + depth.depth_table(study)
    parent_tags = mlflow.MlflowClient().get_run(parent_run_id).data.tags
    if parent_tags.get(tags.SWEEPER) == "optuna":
        search_figures, section = search.write_search_report(
            runs, out, parent_tags.get(tags.SWEEP, "search"))
        figures.update(search_figures)
        depth_section += "\n" + section
    sharp = stability.sharpness_runs(trained)
    if sharp:
        figures["stability.png"] = stability.stability_figure(sharp)
        depth_section += "\n" + stability.stability_section(sharp)
    curves = lc.learning_curves(trained) if lc.sweeps_size(trained) else []
    if curves:
        figures["learning_curve.png"] = lc_report.learning_curve_figure(curves)
        lc_report.write_curves_csv(curves, out / "learning_curve.csv")
    if lc.sweeps_size(trained):
        depth_section += "\n" + lc_report.curves_section(curves)
    if noise.sweeps_batch_size(trained):
        figures["noise_scale.png"] = noise.noise_scale_figure(trained)
        depth_section += "\n" + noise.noise_scale_section(trained)
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    rows = summary_rows(runs)
    counts = defaultdict(int)
    for r in runs:
        counts[r.status] += 1
    summary = f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if any(r.is_trial for r in runs):
        summary += (f" (search trials, each the mean of its seeds: {len(trained)} seed runs "
                    "below them)")
    seed_groups = groups.seed_groups(trained)
    groups.write_groups_csv(seed_groups, out / "groups.csv")
    (out / "summary.md").write_text(f"# Sweep {parent_run_id}\n\n{summary}\n\n"
                                    + (f"{figures_note}\n" if figures_note else "")
                                    + run_tables(rows) + "\n" + diagnosis_section(runs)
                                    + "\n" + groups.groups_section(seed_groups)
                                    + "\n" + compare.comparisons_section(seed_groups)
                                    + depth_section)
    with open(out / "summary.csv", "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if log_to_parent:
        client = mlflow.MlflowClient()
        for path in sorted(out.iterdir()):
            client.log_artifact(parent_run_id, str(path), "report")
        for name in figures:
            with Image.open(out / name) as image:
                client.log_image(parent_run_id, image.convert("RGB"),
                                 key=name.removesuffix(".png"), step=0)
    return SweepReport(out, summary, runs, seed_groups, curves)
