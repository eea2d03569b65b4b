"""The loss along the straight line between two weight settings of one network
(Goodfellow, Vinyals and Saxe 2015, "Qualitatively characterizing neural network
optimization problems"): theta(alpha) = (1 - alpha) * theta0 + alpha * theta1.

With theta0 the initial weights and theta1 the trained ones, a loss that falls smoothly
and monotonically along the line says that training met no barrier on the way; a bump
says it went around one.

Batch norm, two ways:
- "blend" (the default): the running statistics (buffers) are interpolated like the
  parameters. At alpha = 0 and 1 the network is then exactly the initial and the trained
  one, loss for loss. In between, the blended statistics only approximate those of the
  blended weights, and at alpha = 0 they are the untrained 0 and 1, so a deep network's
  eval-mode loss starts high; past the ends a running variance could turn negative, so
  it is clipped at zero (the layer's eps keeps the division finite).
- "recompute": at every alpha the running statistics are estimated afresh, as the plain
  average of the batch statistics of training-mode passes over given batches
  (`recompute_batchnorm`). Every point then shows what its weights can do with matching
  statistics; the trained end differs from the trained network's own loss by the gap
  between its running averages and these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cnn.layers import BatchNorm1D
from cnn.layers.base import snapshot_generators
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.training import evaluate

State = Mapping[str, np.ndarray]
Batches = Iterable[tuple[np.ndarray, np.ndarray]]


def line_alphas(points: int, margin: float) -> np.ndarray:
    """`points` evenly spaced alphas from -margin to 1 + margin, with 0 and 1 among them
    exactly (added if the spacing misses them); (points or points + 1 or + 2,) float64."""
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    # Rounded: linspace gives 1e-17 for 0 and 0.15000000000000002 for 0.15; + 0.0 turns
    # the -0.0 that rounding -1e-17 gives into 0.0.
    alphas = np.round(np.linspace(-margin, 1.0 + margin, points), 10) + 0.0
    return np.union1d(alphas, [0.0, 1.0])


def interpolate_state(theta0: State, theta1: State, alpha: float) -> dict[str, np.ndarray]:
    """(1 - alpha) * theta0 + alpha * theta1 for every key, in theta1's dtype; running
    variances ("...running_var") clipped at zero, since past the ends they can go negative.

    Both must hold the same keys and shapes (e.g. two `Sequential.state_dict()`s).
    """
    if theta0.keys() != theta1.keys():
        differ = sorted(set(theta0) ^ set(theta1))
        raise ValueError(f"the two weight settings differ in keys: {differ[:5]}")
    state = {}
    for key, w1 in theta1.items():
        w0 = theta0[key]
        if w0.shape != w1.shape:
            raise ValueError(f"{key}: shapes differ, {w0.shape} and {w1.shape}")
        w = (1.0 - alpha) * w0.astype(np.float64) + alpha * w1.astype(np.float64)
        if key.endswith("running_var"):
            w = np.maximum(w, 0.0)
        state[key] = w.astype(w1.dtype)
    return state


def recompute_batchnorm(net: Sequential, batches: Batches) -> int:
    """Estimate every batch-norm layer's running mean and variance afresh from `batches`
    of (x (B, H, W, C), y (B,)): the plain average over the batches of each training-mode
    pass's batch statistics (momentum 1/k at the k-th batch). Parameters are untouched,
    and dropout's generators are restored. Returns the number of batches used."""
    norms = [m for _, m in net.named_modules() if isinstance(m, BatchNorm1D)]
    if not norms:
        return 0
    momenta = [norm.momentum for norm in norms]
    restore_generators = snapshot_generators(net)
    count = 0
    try:
        for norm in norms:
            norm.buffers["running_mean"][...] = 0.0
            norm.buffers["running_var"][...] = 1.0
        for count, (x, _) in enumerate(batches, start=1):
            for norm in norms:
                norm.momentum = 1.0 / count  # the first batch replaces the reset values
            net.forward(x, training=True)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        restore_generators()
    return count


@dataclass
class LineLosses:
    """Loss and accuracy at each alpha, per evaluated set (e.g. "train", "test").

    alphas: (P,); loss[name] and acc[name]: (P,) float64, in the order of alphas.
    """

    alphas: np.ndarray
    loss: dict[str, np.ndarray] = field(default_factory=dict)
    acc: dict[str, np.ndarray] = field(default_factory=dict)

    def at(self, alpha: float, name: str) -> float:
        """The loss of set `name` at `alpha` (one of the alphas)."""
        (index,) = np.flatnonzero(self.alphas == alpha)
        return float(self.loss[name][index])


def loss_along_line(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    theta0: State,
    theta1: State,
    alphas: Sequence[float] | np.ndarray,
    batches: Mapping[str, Batches],
    recompute_from: Batches | None = None,
) -> LineLosses:
    """Evaluate (cnn.training.evaluate: eval mode, batch means weighted by batch size) the
    network at theta(alpha) on each set of `batches`, for every alpha.

    batches: name -> re-iterable batches of (x (B, H, W, C), y (B,)), e.g. BatchIterators
    without shuffling. recompute_from: batches to re-estimate the batch-norm statistics
    from at every alpha ("recompute"); None blends them like the parameters ("blend").
    The network's own parameters and buffers are put back afterwards.
    """
    own = net.state_dict()
    result = LineLosses(np.asarray(alphas, dtype=np.float64))
    losses: dict[str, list[float]] = {name: [] for name in batches}
    accs: dict[str, list[float]] = {name: [] for name in batches}
    try:
        for alpha in result.alphas:
            net.load_state_dict(interpolate_state(theta0, theta1, float(alpha)),
                                source=f"the weights at alpha={alpha:g}")
            if recompute_from is not None:
                recompute_batchnorm(net, recompute_from)
            with np.errstate(all="ignore"):  # far from both ends a loss may overflow: inf
                for name, sets in batches.items():
                    done = evaluate(net, loss_fn, sets)
                    losses[name].append(done.loss)
                    accs[name].append(done.acc)
    finally:
        net.load_state_dict(own, source="the network's own weights")
    result.loss = {k: np.asarray(v, dtype=np.float64) for k, v in losses.items()}
    result.acc = {k: np.asarray(v, dtype=np.float64) for k, v in accs.items()}
    return result
