"""The memorisation check: can a copy of the network fit a tiny batch of real images?

Memorising (every image right, the loss near its lowest) is a high bar, and a network can
miss it in the step budget for reasons that are no fault: a small network (8 channels
pooled to 8 features fit 20 images slowly) or a slow optimiser. So a miss is blamed on the
network itself only when it does not learn at all: when its best loss gets no clearly
lower than the loss of a guess that ignores the images (the label frequencies). A
gradient of the wrong sign, weights at zero or dead units leave it there (see
tests/test_diagnostics_memorise.py); a healthy network, however small, gets below it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnn.diagnostics.verdict import FAIL, PASS, WARN, Check
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import Adam, Optimizer
from cnn.training import train_step


@dataclass
class _Attempt:
    needed: int | None  # steps to memorise, None if the budget ran out first
    acc: float  # training accuracy at the last step
    losses: list[float]  # one a step, up to the first that is not finite
    classes: int  # the logits' width


def _memorise(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
) -> _Attempt:
    """Train a copy on (x, y) until it has memorised them or `steps` ran out."""
    twin = copy.deepcopy(net)
    acc, losses = 0.0, []
    classes = twin.infer(x[:1]).shape[1]
    with np.errstate(all="ignore"):
        for step in range(steps):
            loss, acc = train_step(twin, loss_fn, optimizer, x, y)  # acc, loss before the step
            losses.append(loss)
            if not math.isfinite(loss):
                break
            # Near the lowest loss the targets allow (above 0 with label smoothing).
            if acc == 1.0 and loss < loss_fn.minimum(classes) + 0.05:
                return _Attempt(step + 1, acc, losses, classes)
    return _Attempt(None, acc, losses, classes)


def blind_loss(loss_fn: SoftmaxCrossEntropy, y: np.ndarray, num_classes: int) -> float:
    """The lowest loss of logits that ignore the images: the same guess for every image,
    the targets' mean (the label frequencies, smoothed as the loss smooths them).

    A network whose input cannot reach its logits (zero weights, dead units) or whose
    gradient points the wrong way gets no lower than this.
    """
    s, k = loss_fn.label_smoothing, num_classes
    mean_target = (1.0 - s) * np.bincount(y, minlength=k) / len(y) + s / k
    present = mean_target[mean_target > 0]
    return float(-(present * np.log(present)).sum())


def _learns(losses: list[float], blind: float, lowest: float) -> bool:
    """Whether the best loss got a tenth of the way from the blind guess's to the lowest.

    A network that cannot learn approaches the blind loss from above and stops there;
    a tenth of the way below it is already beyond what ignoring the images can reach.
    """
    finite = [v for v in losses if math.isfinite(v)]
    return bool(finite) and min(finite) <= blind - 0.1 * (blind - lowest)


def check_overfit(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    make_optimizer: Callable[[], Optimizer],
    x: np.ndarray,
    y: np.ndarray,
    steps: int = 200,
) -> Check:
    """Can a copy of the network memorise a tiny batch? If it cannot even learn, nothing
    larger will train.

    The configured optimiser tries first, at its configured (peak) rate. If it
    fails, Adam at 1e-3 tries the same. If Adam memorises, the network is fine and the
    learning rate is at fault. If neither does, the network is called broken only if
    neither learns at all (see the module docstring); if one learns, the network is
    slow to memorise (small, or short of steps), or the configured rate is at fault.
    """
    name = f"memorise {len(y)} images in {steps} steps (training accuracy)"
    mine = _memorise(net, loss_fn, make_optimizer(), x, y, steps)
    acc, losses = mine.acc, mine.losses
    if mine.needed is not None:
        return Check(name, PASS, acc, f"memorised in {mine.needed} steps")
    adam = _memorise(net, loss_fn, Adam(1e-3), x, y, steps)
    if not math.isfinite(losses[-1]) or losses[-1] > losses[0]:
        why = "too high: the loss rose or diverged"
    elif max(losses) > 1.05 * losses[0]:
        why = "too high: the loss went up before it came down"
    else:
        why = "too low: the loss fell too slowly"
    if adam.needed is not None:
        return Check(
            name,
            WARN,
            acc,
            f"the configured optimiser cannot memorise them, Adam at 1e-3 can "
            f"(in {adam.needed} steps): the learning rate is most likely {why}",
        )
    blind, lowest = blind_loss(loss_fn, y, mine.classes), loss_fn.minimum(mine.classes)
    learns = _learns(losses, blind, lowest)
    if not (learns or _learns(adam.losses, blind, lowest)):
        best = min((v for v in losses + adam.losses if math.isfinite(v)), default=math.nan)
        return Check(
            name,
            FAIL,
            acc,
            f"the network cannot learn even with Adam at 1e-3 (best loss {best:.3g}, "
            f"{blind:.3g} for a guess that ignores the images): "
            "a gradient bug or a broken initialisation",
        )
    if learns and why.endswith("too slowly"):
        # Learning steadily at the configured rate, faster than Adam: the rate is not
        # at fault, the network (or the budget) is.
        return Check(
            name,
            WARN,
            acc,
            f"it learns ({round(acc * len(y))} of {len(y)} right, the loss "
            f"{losses[0]:.3g} -> {losses[-1]:.3g}) but memorised not all of them, nor did "
            "Adam at 1e-3: a small network or too few steps, not a gradient bug",
        )
    return Check(
        name,
        WARN,
        acc,
        f"the configured optimiser cannot memorise them, Adam at 1e-3 learns "
        f"(the loss {adam.losses[0]:.3g} -> {adam.losses[-1]:.3g}): "
        f"the learning rate is most likely {why}",
    )
