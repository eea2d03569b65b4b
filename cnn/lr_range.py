"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural
networks"; the "LR finder" of fastai and PyTorch Lightning).

Train for a few hundred steps while the learning rate grows exponentially from `min_lr` to
`max_lr`, and record the loss at each step. The loss first stays flat (the rate is too
small to move the weights), then falls, then blows up (the rate is too large). Two
well-known rules turn the curve into a suggestion (`RULES`):
- "min_div_10" (the default): a tenth of the rate at the minimum of the smoothed loss,
  Smith's and fastai's rule of thumb ("an order of magnitude below the minimum"). It
  depends on one point of a smooth curve only, so it is stable for short tests;
- "steepest": the rate where the smoothed loss falls fastest against log(rate), as
  Lightning's `suggestion()` and fastai's `steep` pick it, looked for up to the minimum
  only (past it a collapsed network's loss can fall again); noisier on few steps.

Pure NumPy training maths: a network, a loss, an optimiser and batches; it knows nothing
of configs or tracking. It trains the network it is given in place: pass a fresh one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import Optimizer
from cnn.training import train_step

Batches = Iterable[tuple[np.ndarray, np.ndarray]]


@dataclass
class RangeTest:
    """What a range test recorded, one entry per optimiser step taken.

    lrs, losses, smoothed: (steps,) the rate of each step, its batch loss, and the
    bias-corrected exponential moving average of the losses.
    suggestion: the suggested rate, by `rule` (see `suggest_lr`); stopped_early: the smoothed loss
    diverged (above `diverge_factor` x its best, or not finite) before the last step.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    rule: str
    stopped_early: bool

    @property
    def best_loss(self) -> float:
        """The lowest smoothed loss reached."""
        return float(np.nanmin(self.smoothed))


def exponential_rates(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """(steps,) rates growing geometrically from min_lr to max_lr, both included."""
    if not 0 < min_lr < max_lr < float("inf"):
        raise ValueError(f"need 0 < min_lr < max_lr, both finite, got min_lr={min_lr}, "
                         f"max_lr={max_lr}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    return np.geomspace(min_lr, max_lr, steps)


RULES = ("min_div_10", "steepest")


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray, rule: str = "min_div_10") -> float:
    """The suggested rate for a recorded curve, by `rule` (one of RULES; see the module).

    lrs, smoothed: (steps,) the rates and the smoothed losses, without a diverged tail.
    """
    if rule == "min_div_10":
        return float(lrs[int(np.nanargmin(smoothed))] / 10)
    if rule == "steepest":
        return float(lrs[steepest_descent(lrs, smoothed)])
    raise ValueError(f"unknown suggestion rule {rule!r}; choose one of {', '.join(RULES)}")


def steepest_descent(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int = 10) -> int:
    """The index of the steepest descent of the smoothed loss against log(rate).

    lrs, smoothed: (steps,). Only the descent up to the minimum counts, without its first
    `skip_start` steps (the moving average is still warming up there), as Lightning
    skips them; with too few steps for that, the whole descent is used.
    """
    end = int(np.nanargmin(smoothed)) + 1  # the descent, the minimum included
    lo = skip_start if end - skip_start >= 3 else 0
    if end - lo < 2:
        return end - 1
    slope = np.gradient(smoothed[lo:end], np.log(lrs[lo:end]))  # d loss / d log(lr)
    return lo + int(np.argmin(np.where(np.isfinite(slope), slope, np.inf)))


def lr_range_test(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    batches: Batches,
    *,
    min_lr: float = 1e-5,
    max_lr: float = 10.0,
    steps: int = 200,
    beta: float = 0.98,
    diverge_factor: float = 4.0,
    rule: str = "min_div_10",
) -> RangeTest:
    """Train `net` for up to `steps` steps at exponentially growing rates; see the module.

    `batches` is iterated again from the start whenever it runs out (one epoch per
    iter(), as cnn.data.BatchIterator). `beta` is the moving average's decay. The test
    stops early, as expected rather than as a failure, once the smoothed loss exceeds
    `diverge_factor` times its best or stops being finite. `rule`: see `suggest_lr`.
    """
    if rule not in RULES:
        raise ValueError(f"unknown suggestion rule {rule!r}; choose one of {', '.join(RULES)}")
    rates = exponential_rates(min_lr, max_lr, steps)
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, stopped = 0.0, math.inf, False
    batch_iter = iter(batches)
    for i, lr in enumerate(rates):
        try:
            x, y = next(batch_iter)
        except StopIteration:
            batch_iter = iter(batches)
            x, y = next(batch_iter)
        optimizer.lr = float(lr)
        loss, _ = train_step(net, loss_fn, optimizer, x, y)
        losses.append(loss)
        if not math.isfinite(loss):
            smoothed.append(math.inf)
            stopped = i < steps - 1
            break
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))  # bias correction: the average starts at 0
        smoothed.append(value)
        best = min(best, value)
        if value > diverge_factor * best:
            stopped = i < steps - 1
            break
    lrs = rates[: len(losses)]
    smooth = np.asarray(smoothed)
    # The diverging tail is left out of the suggestion: it is where the rate is too high.
    usable = len(smooth) - 1 if stopped else len(smooth)
    if usable == 0:  # diverged at the very first step: the smallest rate is all there is
        suggestion = float(lrs[0])
    else:
        suggestion = suggest_lr(lrs[:usable], smooth[:usable], rule)
    return RangeTest(lrs=lrs, losses=np.asarray(losses), smoothed=smooth,
                     suggestion=suggestion, rule=rule, stopped_early=stopped)
