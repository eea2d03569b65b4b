"""A run's diagnosis from training itself (cnn.diagnostics.trajectory), read from what it
logged: its metric series, its status and failure tags. The sweep report diagnoses each
run this way (collect.RunSummary.training), and each run tags its own at its end
(`log_training_diagnosis`, tags.TRAINING_DIAGNOSIS), so the UI shows it."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Mapping

import mlflow

from cnn.diagnostics.trajectory import RunEnd, TrainingDiagnosis, diagnose_training
from cnn.training import DivergenceError
from experiments.tracking import layer_metrics, tags

log = logging.getLogger(__name__)

SERIES = ("train_loss", "train_acc", "val_loss", "sharpness", "sharpness_threshold")
LAYER_STATISTICS = (".dead_frac", ".grad_norm")  # of cnn.diagnostics.LayerStats
DEFAULT_CLASSES = 10  # CIFAR-10's and digits', for runs logged before tags.NUM_CLASSES


def diagnosed_keys(metric_keys: Iterable[str]) -> list[str]:
    """The metrics of a run that its diagnosis reads."""
    return sorted(k for k in metric_keys if k in SERIES or k.endswith(LAYER_STATISTICS))


def logged_series(client: mlflow.MlflowClient, run_id: str,
                  keys: Iterable[str]) -> dict[str, dict[int, float]]:
    """{metric: {step: value}}, the last value logged at a step winning (a resumed run);
    per-layer statistics under cnn.diagnostics' own names ("relu2.dead_frac")."""
    series = {}
    for key in keys:
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
        series[key.removeprefix(layer_metrics.PREFIX)] = {m.step: m.value for m in history}
    return series


def run_end(status: str, run_tags: Mapping[str, str]) -> RunEnd:
    """How a logged run ended, from its status and the tags tracking.lifecycle wrote."""

    def number(key: str) -> int | None:
        value = run_tags.get(key, "")
        return int(value) if value.lstrip("-").isdigit() else None

    return RunEnd(status=status, reason=run_tags.get(tags.FAILURE_REASON, ""),
                  epoch=number(tags.FAILURE_EPOCH), step=number(tags.FAILURE_STEP),
                  diverged=run_tags.get(tags.ERROR_TYPE) == DivergenceError.__name__)


def momentum_of(params: Mapping[str, str]) -> float | None:
    """The heavy-ball momentum of an SGD run (what its stability threshold depends on)."""
    if params.get("optim.name", "sgd") != "sgd":
        return None
    try:
        return float(params.get("optim.momentum", "0")) or None
    except ValueError:
        return None


def diagnose_logged(series: Mapping[str, Mapping[int, float]], status: str,
                    run_tags: Mapping[str, str], params: Mapping[str, str]) -> TrainingDiagnosis:
    """The diagnosis of a logged run from its series, status, tags and params."""
    classes = run_tags.get(tags.NUM_CLASSES, "")
    return diagnose_training(series, run_end(status, run_tags),
                             int(classes) if classes.isdigit() else DEFAULT_CLASSES,
                             momentum=momentum_of(params))


def _end_of(error: BaseException | None) -> RunEnd:
    """How a run is ending, from the exception it is ending with (as tracking.lifecycle
    will record it)."""
    if error is None:
        return RunEnd()
    if isinstance(error, DivergenceError):
        return RunEnd("FAILED", error.reason, error.epoch, error.step, diverged=True)
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return RunEnd("FAILED", text)


def log_training_diagnosis(run_id: str, error: BaseException | None, num_classes: int) -> None:
    """Tag the active run with its diagnosis from the metrics and params it logged, as it
    ends (with `error`, or None). Never raises: the diagnosis must not hide how the run
    ended."""
    try:
        client = mlflow.MlflowClient()
        logged = client.get_run(run_id).data
        series = logged_series(client, run_id, diagnosed_keys(logged.metrics))
        diagnosis = diagnose_training(series, _end_of(error), num_classes,
                                      momentum=momentum_of(logged.params))
        mlflow.set_tags({tags.TRAINING_DIAGNOSIS: diagnosis.line()[:5000],
                         tags.CONVERGED: tags.flag(diagnosis.converged),
                         tags.NUM_CLASSES: str(num_classes)})
    except Exception as e:
        log.warning("could not tag run %s with its training diagnosis: %s", run_id, e)
