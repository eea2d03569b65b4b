"""Metric series read back from a run, and metric values sent in batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import mlflow

BATCH = 1000  # metric values per log_batch call: MLflow's own limit


def metric_series(client: mlflow.MlflowClient, run_id: str, key: str) -> list[float]:
    """A metric's values in step order (ties in logging order)."""
    history = client.get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def epoch_history(client: mlflow.MlflowClient, run_id: str, keys: Iterable[str],
                  epochs: int) -> list[dict[str, float]]:
    """One dict per epoch 1..epochs of the metrics `keys` logged at step=epoch."""
    history: list[dict[str, float]] = [{} for _ in range(epochs)]
    for key in keys:
        for m in client.get_metric_history(run_id, key):
            if 1 <= m.step <= epochs:
                history[m.step - 1][key] = m.value
    return history


def log_metrics_batched(client: mlflow.MlflowClient, run_id: str,
                        metrics: Sequence[mlflow.entities.Metric]) -> int:
    """Send metric values in batches of BATCH; return how many were sent."""
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=list(metrics[start:start + BATCH]))
    return len(metrics)
