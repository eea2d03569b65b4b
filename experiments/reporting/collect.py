"""The runs of a sweep, read back from MLflow as the report needs them.

The runs of a sweep are its parent's children. A search over replicates (search.seeds > 1,
experiments.sweeps.trial) has one child per trial, whose test accuracy is the mean over
its seeds (the objective), and the seed runs below each trial: the trial's `replicates`,
which `trained_runs` puts in its place where the report needs runs that trained.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import mlflow

from cnn.diagnostics.trajectory import TrainingDiagnosis
from experiments.reporting.training_diagnosis import (
    diagnose_logged,
    diagnosed_keys,
    logged_series,
)
from experiments.tracking import swept, tags
from experiments.tracking.history import metric_series

# Per-epoch series read back; the noise scale and the step count only if the run logged
# them (trainer.noise_scale).
CURVE_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "grad_noise_scale", "steps")


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
    health: str = ""  # the pre-training diagnosis: pass | warn | fail (experiments.runs.health)
    health_cause: str = ""  # its most likely cause in plain words
    params: dict[str, str] = field(default_factory=dict)  # every logged param ("model.depth")
    metric_keys: list[str] = field(default_factory=list)  # every metric it logged
    tags: dict[str, str] = field(default_factory=dict)  # every tag (overrides, job number)
    swept: dict[str, str] = field(default_factory=dict)  # swept key -> value (tags.SWEPT)
    metrics: dict[str, float] = field(default_factory=dict)  # every metric's last value
    # A search trial's seed runs (tags.TRIAL_SEEDS); its test_acc is their mean
    # (test_acc_mean) and its seed the seeds, "0 1 2".
    replicates: list[RunSummary] = field(default_factory=list)
    start_time: int = 0  # ms since the epoch, as MLflow keeps them
    end_time: int = 0
    # {metric: {step: value}} of what its training diagnosis reads (training_diagnosis)
    series: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def size(self) -> float:
        return size_of(self.n_train)

    @property
    def is_trial(self) -> bool:
        """Whether this is a search trial over replicates, its seeds the runs below it."""
        return tags.TRIAL_SEEDS in self.tags

    @property
    def training(self) -> TrainingDiagnosis:
        """What happened during training, from its logged series (its curves, as epochs
        1, 2, ..., where they are all there is)."""
        curves = {key: dict(enumerate(values, start=1)) for key, values in self.curves.items()}
        return diagnose_logged({**curves, **self.series}, self.status, self.tags, self.params)


def size_of(n_train: str) -> float:
    """n_train as logged, as a number for sorting and plotting ("all" sorts last)."""
    return math.inf if n_train in ("all", "None") else float(n_train)


def collect_runs(parent_run_id: str) -> list[RunSummary]:
    """The child runs of a sweep's parent run, with their per-epoch metric series; a
    search trial's with its seed runs as its replicates."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    summaries = [_summary(client, run) for run in _children(client, parent)]
    for trial in summaries:
        if trial.is_trial:
            trial.replicates = [_summary(client, run) for run in _children(
                client, client.get_run(trial.run_id))]
    return summaries


def trained_runs(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """The runs that trained: each search trial's seed runs in its place, the others."""
    return [r for run in runs for r in (run.replicates if run.is_trial else [run])]


def _children(client: mlflow.MlflowClient, parent: mlflow.entities.Run) -> list:
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{tags.PARENT}` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=5000,
    )


def _summary(client: mlflow.MlflowClient, run: mlflow.entities.Run) -> RunSummary:
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    trial = tags.TRIAL_SEEDS in t
    summary = RunSummary(
        run_id=run.info.run_id,
        name=run.info.run_name or run.info.run_id,
        status=run.info.status,
        init=p.get("init.name", "?"),
        lr=float(p.get("optim.lr", "nan")),
        n_train=p.get("data.n_train", "all"),
        seed=t[tags.TRIAL_SEEDS] if trial else p.get("trainer.seed", "0"),
        test_acc=m.get("test_acc_mean" if trial else "test_acc"),
        test_loss=m.get("test_loss"),
        failure=t.get(tags.FAILURE_REASON, ""),
        health=t.get(tags.HEALTH, ""),
        health_cause=t.get(tags.HEALTH_CAUSE, ""),
        params=dict(p),
        metric_keys=list(m),
        tags=dict(t),
        swept=swept.decode(t.get(tags.SWEPT)),
        metrics=dict(m),
        start_time=run.info.start_time or 0,
        end_time=run.info.end_time or run.info.start_time or 0,
    )
    for key in CURVE_METRICS:
        if key in m:
            summary.curves[key] = metric_series(client, run.info.run_id, key)
    summary.series = logged_series(client, run.info.run_id, diagnosed_keys(m))
    return summary


def extra_keys(runs: Sequence[RunSummary], shown: Iterable[str] = ()) -> list[str]:
    """The swept keys of these runs, in the sweep's order, but those in `shown` (which the
    table or figure lays out on its own) and those with one value here."""
    shown = set(shown)
    keys = list(dict.fromkeys(k for r in runs for k in r.swept if k not in shown))
    return [k for k in keys if len({r.swept.get(k) for r in runs}) > 1]


def not_converged(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs that did not converge, by cnn.diagnostics.trajectory.CONVERGENCE_RULE: failed,
    killed, or finished with a training loss above half of ln K."""
    return [r for r in runs if not r.training.converged]


def outcome_and_cause(r: RunSummary) -> tuple[str, str]:
    """What happened to a run that did not converge, during training first (its training
    diagnosis), and its diagnosis before training."""
    training = r.training
    if r.status == "FINISHED":
        test = f"test accuracy {r.test_acc:.3f}" if r.test_acc is not None else "no test accuracy"
        outcome = f"{training.verdict}, {test}; during training: {training.line()}"
    else:
        outcome = f"during training: {training.line()}"
    cause = r.health_cause if r.health_cause not in ("", "-") else "no cause found"
    return outcome, cause


def diagnosis(r: RunSummary) -> str:
    """The run's diagnosis before training and its cause, e.g. "fail, vanishing gradients";
    a run that had the checks turned off says so rather than that they found nothing."""
    if not r.health and r.params.get("trainer.health_checks") == "False":
        return "none, the health checks were off (trainer.health_checks=false)"
    return f"{r.health or '?'}, {outcome_and_cause(r)[1]}"
