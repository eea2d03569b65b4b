"""The runs of a sweep, read back from MLflow as the report needs them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import mlflow

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

    @property
    def size(self) -> float:
        return size_of(self.n_train)


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
        )
        for key in CURVE_METRICS:
            if key in m:
                summary.curves[key] = metric_series(client, run.info.run_id, key)
        summaries.append(summary)
    return summaries


def extra_keys(runs: Sequence[RunSummary], shown: Iterable[str] = ()) -> list[str]:
    """The swept keys of these runs, in the sweep's order, but those in `shown` (which the
    table or figure lays out on its own) and those with one value here."""
    shown = set(shown)
    keys = list(dict.fromkeys(k for r in runs for k in r.swept if k not in shown))
    return [k for k in keys if len({r.swept.get(k) for r in runs}) > 1]


def not_converged(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs that failed, were killed, or reached less than half the sweep's best test accuracy.

    Judged against the best run rather than chance, so it needs no class count.
    """
    finished = [r.test_acc for r in runs if r.status == "FINISHED" and r.test_acc is not None]
    bar = 0.5 * max(finished, default=0.0)
    return [r for r in runs
            if r.status != "FINISHED" or r.test_acc is None or r.test_acc < bar]


def outcome_and_cause(r: RunSummary) -> tuple[str, str]:
    """What happened to a run that did not converge, and its diagnosis before training."""
    outcome = r.failure or (f"test accuracy {r.test_acc:.3f}" if r.test_acc is not None
                            else "no test accuracy")
    cause = r.health_cause if r.health_cause not in ("", "-") else "no cause found"
    return outcome, cause


def diagnosis(r: RunSummary) -> str:
    """The run's diagnosis before training and its cause, e.g. "fail, vanishing gradients";
    a run that had the checks turned off says so rather than that they found nothing."""
    if not r.health and r.params.get("trainer.health_checks") == "False":
        return "none, the health checks were off (trainer.health_checks=false)"
    return f"{r.health or '?'}, {outcome_and_cause(r)[1]}"
