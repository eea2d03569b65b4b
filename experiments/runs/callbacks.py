"""Callbacks of a tracked run's training loop (`cnn.training.fit(..., callbacks=[...])`).

    MetricsLogger   logs each epoch's metrics to the active MLflow run, step=epoch
    ProgressBar     a tqdm bar over all steps with the epoch's running loss and accuracy
    KeepTraining    runs MetricsLogger so that an unreachable tracking server never
                    stops training (tracking.offline)
    noise_scale     the gradient noise scale of every epoch (trainer.noise_scale)
    from_config     the config's own `callbacks`, instantiated with Hydra
"""

from __future__ import annotations

import logging
import math
from typing import Any

import mlflow
from tqdm.auto import tqdm

from cnn.diagnostics.noise_scale import NoiseScale, NoiseScaleMonitor
from cnn.network import Sequential
from experiments.tracking.offline import OfflineBuffer

log = logging.getLogger(__name__)


class MetricsLogger:
    """Logs every epoch's metrics with step=epoch (one call per epoch) and keeps them."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append(dict(metrics))
        mlflow.log_metrics(metrics, step=epoch)
        shown = "  ".join(
            f"{k}={v:.4g}" for k, v in metrics.items() if k not in ("epoch_time_s", "images_per_s")
        )
        log.info("epoch %d/%d  %s  (%.1f s, %.0f img/s)", epoch, self.epochs, shown,
                 metrics["epoch_time_s"], metrics["images_per_s"])


class ProgressBar:
    """One tqdm bar over all optimiser steps, showing the running mean loss and accuracy
    of the current epoch."""

    def __init__(self, total_steps: int, epochs: int, desc: str, enabled: bool = True) -> None:
        self.epochs = epochs
        self.bar = tqdm(total=total_steps, desc=desc, unit="step", disable=not enabled,
                        dynamic_ncols=True, leave=True)
        self._reset(epoch=1)

    def _reset(self, epoch: int) -> None:
        self.epoch, self.loss_sum, self.acc_sum, self.batches = epoch, 0.0, 0.0, 0

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        self.loss_sum, self.acc_sum, self.batches = (
            self.loss_sum + loss, self.acc_sum + acc, self.batches + 1)
        self.bar.update(1)
        self.bar.set_postfix_str(
            f"epoch {self.epoch}/{self.epochs} loss {self.loss_sum / self.batches:.4f} "
            f"acc {self.acc_sum / self.batches:.3f}", refresh=False)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._reset(epoch + 1)

    def close(self) -> None:
        self.bar.close()


class KeepTraining:
    """Runs MetricsLogger so that an unreachable tracking server never stops training:
    the epoch's metrics are then kept by the OfflineBuffer and sent later."""

    def __init__(self, logger: MetricsLogger, buffer: OfflineBuffer) -> None:
        self.logger, self.buffer = logger, buffer

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.buffer.flush():  # what earlier epochs could not send goes first
            if self.buffer.guard(self.logger.on_epoch_end, epoch, metrics):
                return
            # MetricsLogger kept them in its history before its call failed
        else:
            self.logger.history.append(dict(metrics))
            log.info("epoch %d/%d  train_loss=%.4g (tracking server away: metrics kept)",
                     epoch, self.logger.epochs, metrics["train_loss"])
        self.buffer.add(metrics, epoch)


def noise_scale(net: Sequential, buffer: OfflineBuffer) -> NoiseScaleMonitor:
    """The noise scale's monitor, logging each epoch's grad_noise_scale (tr(Sigma)/|G|^2;
    NaN when the |G|^2 estimate is not positive), grad_noise_trace (tr(Sigma)),
    grad_sq_norm (|G|^2) and steps (the optimiser steps so far) at step=epoch. Close it
    after training."""

    def log_estimate(epoch: int, estimate: NoiseScale) -> None:
        buffer.log_metrics({"grad_noise_scale": estimate.b_simple,
                            "grad_noise_trace": estimate.trace,
                            "grad_sq_norm": estimate.grad_sq,
                            "steps": float(estimate.step)}, epoch)
        shown = "n/a (|G|^2 estimate <= 0)" if math.isnan(estimate.b_simple) else \
            f"{estimate.b_simple:.4g}"
        log.info("epoch %d: gradient noise scale %s", epoch, shown)

    return NoiseScaleMonitor(net, on_epoch=log_estimate)


def from_config(cfg: Any) -> list[Any]:
    """The callbacks the config's `callbacks` mapping names, in its order (e.g. early
    stopping of a user's own, or the fault injections of the test suite)."""
    specs = cfg.callbacks
    if not specs:
        return []
    from hydra.utils import instantiate

    return [instantiate(spec) for spec in specs.values()]
