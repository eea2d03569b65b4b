"""The training loop: epochs of mini-batch gradient descent, with metrics.

It knows nothing of configs or tracking. Whoever calls it observes progress
through callbacks:
    on_batch_end(step, loss, acc)          after every optimiser step
    on_epoch_end(epoch, metrics)           metrics: EpochMetrics.as_dict(), i.e.
                                           train_loss, train_acc, lr, epoch_time_s,
                                           images_per_s, and val_loss / val_acc with
                                           validation data
A loss that stops being finite raises DivergenceError, so a diverged run ends
at once with the step and the reason instead of training on NaNs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np

from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import Optimizer
from cnn.schedules import Schedule

Batches = Iterable[tuple[np.ndarray, np.ndarray]]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        self.epoch, self.step, self.loss = epoch, step, loss
        self.reason = f"loss became {loss} at epoch {epoch}, step {step}"
        super().__init__(f"training diverged: {self.reason}")


class Callback(Protocol):
    def on_batch_end(self, step: int, loss: float, acc: float) -> None: ...
    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass(kw_only=True)
class EpochMetrics:
    """What `fit` measures each epoch; `as_dict` is what callbacks and the history get."""

    train_loss: float  # the mean of the epoch's batch losses, weighted by batch size
    train_acc: float
    val_loss: float | None = None  # with validation data only
    val_acc: float | None = None
    lr: float  # the rate of the epoch's last step
    epoch_time_s: float
    images_per_s: float

    def as_dict(self) -> dict[str, float]:
        return {key: value for key, value in asdict(self).items() if value is not None}


EPOCH_METRICS = tuple(f.name for f in fields(EpochMetrics))  # every key `fit` can report


@dataclass
class Evaluation:
    """A pass over held-out data: mean loss, accuracy, and every prediction."""

    loss: float
    acc: float
    labels: np.ndarray  # (N,) true classes
    predictions: np.ndarray  # (N,) predicted classes


def evaluate(net: Sequential, loss_fn: SoftmaxCrossEntropy, batches: Batches, *,
             flip: bool = False, translate: int = 0) -> Evaluation:
    """Loss (batch means weighted by batch size), accuracy and predictions, in evaluation mode.

    flip: test-time augmentation; the logits are the mean of those of each (B, H, W, C)
    image and of its mirror image (W reversed), so a class seen facing either way counts.
    translate: test-time augmentation by shifts of `translate` pixels (0: none); the
    logits are half those of the image and a quarter each of it shifted down-right and
    up-left, reflect-padded (with flip, each view with its mirror: airbench's six views).
    """
    total_loss, labels, predictions = 0.0, [], []
    for x, y in batches:
        logits = _view_logits(net, x, flip)  # (B, K)
        if translate:
            down_right, up_left = shifted_views(x, translate)
            logits = 0.5 * logits + 0.25 * (_view_logits(net, down_right, flip)
                                            + _view_logits(net, up_left, flip))
        total_loss += loss_fn.forward(logits, y) * len(y)
        labels.append(y)
        predictions.append(logits.argmax(axis=1))  # (B,)
    if not labels:
        raise ValueError("cannot evaluate on no images (the batches are empty)")
    y_true, y_pred = np.concatenate(labels), np.concatenate(predictions)  # (N,), (N,)
    correct = int((y_true == y_pred).sum())
    return Evaluation(total_loss / len(y_true), correct / len(y_true), y_true, y_pred)


def _view_logits(net: Sequential, x: np.ndarray, flip: bool) -> np.ndarray:
    """(B, K) logits of (B, H, W, C) images x, averaged with their mirror images' if flip."""
    logits = net.infer(x)  # as forward(x, training=False) gives them
    if flip:
        mirrored = np.ascontiguousarray(x[:, :, ::-1])  # (B, H, W, C), W reversed
        logits = 0.5 * (logits + net.infer(mirrored))
    return logits


def shifted_views(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W, C) images x moved n pixels down-right and n pixels up-left, the pixels
    that come in reflected from the edge (as the training crop pads them)."""
    height, width = x.shape[1:3]
    if not 0 < n < min(height, width):
        raise ValueError(f"a shift of {n} pixels needs 0 < n < {min(height, width)} "
                         f"for {height}x{width} images")
    padded = np.pad(x, ((0, 0), (n, n), (n, n), (0, 0)), mode="reflect")  # (B, H+2n, W+2n, C)
    down_right = padded[:, :height, :width]  # view[i, j] = x[i - n, j - n]
    up_left = padded[:, 2 * n:, 2 * n:]  # view[i, j] = x[i + n, j + n]
    return np.ascontiguousarray(down_right), np.ascontiguousarray(up_left)


def train_step(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[float, float]:
    """One forward, backward and update on a batch; returns its loss and accuracy."""
    logits = net.forward(x, training=True)
    loss = loss_fn.forward(logits, y)
    if math.isfinite(loss):
        net.backward(loss_fn.backward())  # build_model's networks skip the input gradient
        optimizer.step(net.params, net.grads)
    return loss, float((logits.argmax(axis=1) == y).mean())


def fit(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    schedule: Schedule,
    train_batches: Batches,
    epochs: int,
    *,
    val_batches: Batches | None = None,
    callbacks: Sequence[object] = (),
    start_epoch: int = 1,
) -> list[dict[str, float]]:
    """Train for epochs start_epoch..epochs (1-based) and return each epoch's metrics.

    `train_batches` is iterated once per epoch (a reshuffling iterator gives
    a new order each time). The schedule is indexed by optimiser step.
    """
    history: list[dict[str, float]] = []
    step = (start_epoch - 1) * _len_or_zero(train_batches)
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        loss_sum, acc_sum, seen = 0.0, 0.0, 0
        for x, y in train_batches:
            optimizer.lr = schedule(step)
            if (momentum := schedule.momentum(step)) is not None:
                optimizer.momentum = momentum
            loss, acc = train_step(net, loss_fn, optimizer, x, y)
            if not math.isfinite(loss):
                raise DivergenceError(epoch, step, loss)
            loss_sum, acc_sum, seen = (
                loss_sum + loss * len(y),
                acc_sum + acc * len(y),
                seen + len(y),
            )
            step += 1
            _notify(callbacks, "on_batch_end", step, loss, acc)
        elapsed = time.perf_counter() - started
        held_out = None if val_batches is None else evaluate(net, loss_fn, val_batches)
        metrics = EpochMetrics(
            train_loss=loss_sum / seen, train_acc=acc_sum / seen,
            val_loss=None if held_out is None else held_out.loss,
            val_acc=None if held_out is None else held_out.acc,
            lr=optimizer.lr, epoch_time_s=elapsed, images_per_s=seen / elapsed,
        ).as_dict()
        history.append(metrics)
        _notify(callbacks, "on_epoch_end", epoch, metrics)
    return history


def _len_or_zero(batches: Batches) -> int:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return 0


def _notify(callbacks: Sequence[object], event: str, *args) -> None:
    for callback in callbacks:
        handler = getattr(callback, event, None)
        if handler is not None:
            handler(*args)
