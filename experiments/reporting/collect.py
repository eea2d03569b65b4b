"""The runs of a sweep, read back from MLflow as the report needs them."""

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
    health: str = ""  # the pre-training diagnosis: pass | warn | fail (experiments.runs.health)
    health_cause: str = ""  # its most likely cause in plain words
    params: dict[str, str] = field(default_factory=dict)  # every logged param ("model.depth")
    metric_keys: list[str] = field(default_factory=list)  # every metric it logged
    tags: dict[str, str] = field(default_factory=dict)  # every tag (overrides, job number)
    swept: dict[str, str] = field(default_factory=dict)  # swept key -> value (tags.SWEPT)
    start_time: int = 0  # ms since the epoch, as MLflow keeps them
    end_time: int = 0
    # {metric: {step: value}} of what its training diagnosis reads (training_diagnosis)
    series: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def size(self) -> float:
        return size_of(self.n_train)

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
    """The child runs of a sweep's parent run, with their per-epoch metric series."""
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{tags.PARENT}` = '{parent_run_id}'",
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
            failure=run.data.tags.get(tags.FAILURE_REASON, ""),
            health=run.data.tags.get(tags.HEALTH, ""),
            health_cause=run.data.tags.get(tags.HEALTH_CAUSE, ""),
            params=dict(p),
            metric_keys=list(m),
            tags=dict(run.data.tags),
            swept=swept.decode(run.data.tags.get(tags.SWEPT)),
            start_time=run.info.start_time or 0,
            end_time=run.info.end_time or run.info.start_time or 0,
        )
        for key in CURVE_METRICS:
            if key in m:
                summary.curves[key] = metric_series(client, run.info.run_id, key)
        summary.series = logged_series(client, run.info.run_id, diagnosed_keys(m))
        summaries.append(summary)
    return summaries


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
