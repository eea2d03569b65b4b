"""The gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish, Kaplan, Amodei et al.
2018, "An Empirical Model of Large-Batch Training"), measured during training from the
gradients each step already computes.

G is the gradient of the loss over the whole training set, Sigma the covariance of one
example's gradient. A batch of b examples gives a gradient G_b with
E|G_b|^2 = |G|^2 + tr(Sigma) / b, so two batch sizes b < B give unbiased estimates:

    |G|^2     ~ (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) ~ (|G_b|^2 - |G_B|^2) / (1/b - 1/B)

Here B is the step's batch and b its halves: each step's batch gradient is split into the
share of its first half of the rows and that of the rest, G = (b1 G_1 + b2 G_2) / B,
with |G_b|^2 the mean of |G_1|^2 and |G_2|^2 and 1/b the mean of 1/b1 and 1/b2 (so an
odd batch is split too). Each step gives the two estimates; an epoch's noise scale is the
ratio of their means over its steps (a mean of ratios would be biased by their noise).

How the halves are found: after each layer's backward, the observer runs the layer's
backward once more with the rows of the second half of its output gradient zeroed, and
keeps the gradients it gives; then it puts the layer's own gradients back. That costs
about a third more per step, and changes nothing of the training: the weights, the
gradients the optimiser reads and the batch-norm statistics stay bit for bit the same.
It needs a layer's parameter gradients to be sums over the batch's rows, linear in the
output gradient, as those of every layer in cnn.layers are.

With batch norm, a half's share is not the gradient of that half alone: the rows of the
output gradient already carry the whole batch's statistics. The estimate is then that of
the per-example shares of the batch gradient, the usual reading for such networks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cnn.layers.base import Layer, Observer
from cnn.network import Sequential


@dataclass
class HalfNorms:
    """The squared norms of one backward pass of one layer's parameter gradients: of the
    whole batch's (`full`) and of each half's mean gradient; the halves' sizes."""

    full: float
    first: float
    second: float
    sizes: tuple[int, int]


def squared_norm(arrays: Iterable[np.ndarray]) -> float:
    """Sum of the squares of every entry, in float64."""
    return float(sum(np.sum(np.square(a, dtype=np.float64)) for a in arrays))


class _HalvesObserver(Observer):
    """Keeps, for each layer it watches, the HalfNorms of its latest backward pass."""

    def __init__(self) -> None:
        self.latest: dict[int, HalfNorms] = {}

    def backward_end(self, layer: Layer, dout: np.ndarray, dx: np.ndarray | None) -> None:
        n = dout.shape[0]
        if n < 2:
            return
        first = n // 2
        own, input_grad = dict(layer.grads), layer.input_grad
        masked = dout.copy()
        masked[first:] = 0.0
        layer.input_grad = False  # the input gradient of this pass is not needed
        try:
            layer.backward(masked)
            share = dict(layer.grads)  # the first half's share of the batch gradient
        finally:
            layer.grads.update(own)
            layer.input_grad = input_grad
        # The loss is the batch mean: its gradient is the sum of the halves' shares, and
        # a half's own mean gradient is its share times n / its size.
        keys = list(own)
        g1 = [share[k].astype(np.float64) for k in keys]
        g2 = [own[k].astype(np.float64) - s for k, s in zip(keys, g1, strict=True)]
        self.latest[id(layer)] = HalfNorms(
            full=squared_norm(own[k] for k in keys),
            first=squared_norm(g1) * (n / first) ** 2,
            second=squared_norm(g2) * (n / (n - first)) ** 2,
            sizes=(first, n - first),
        )


@dataclass
class NoiseScale:
    """One epoch's estimates: tr(Sigma), |G|^2 (means over its `steps` steps) and their
    ratio; `step` is the optimiser's step count at the epoch's end."""

    trace: float
    grad_sq: float
    steps: int
    step: int

    @property
    def b_simple(self) -> float:
        """tr(Sigma) / |G|^2; NaN when the |G|^2 estimate is not positive (noise swamps it)."""
        return self.trace / self.grad_sq if self.grad_sq > 0 else float("nan")


def step_estimates(norms: list[HalfNorms]) -> tuple[float, float]:
    """(tr(Sigma), |G|^2) of one step from the HalfNorms of every layer with parameters."""
    big = sum(h.full for h in norms)
    small = 0.5 * sum(h.first + h.second for h in norms)
    b1, b2 = norms[0].sizes
    batch = b1 + b2
    inv_small = 0.5 * (1.0 / b1 + 1.0 / b2)  # 1/b: E|G_b|^2 = |G|^2 + tr(Sigma) / b
    b = 1.0 / inv_small
    trace = (small - big) / (inv_small - 1.0 / batch)
    grad_sq = (batch * big - b * small) / (batch - b)
    return trace, grad_sq


class NoiseScaleMonitor:
    """Training callback: the gradient noise scale of every epoch, from its steps.

    Attaches an observer to every layer with parameters of `net`; `history` holds one
    NoiseScale per epoch and `on_epoch(epoch, estimate)` is called with each, e.g. to log
    it; `last` is the latest step's (tr(Sigma), |G|^2). `close()` detaches the observers.
    """

    def __init__(self, net: Sequential,
                 on_epoch: Callable[[int, NoiseScale], None] | None = None) -> None:
        self.on_epoch = on_epoch
        self.history: list[NoiseScale] = []
        self._observer = _HalvesObserver()
        self._layers = [layer for _, layer in net.named_leaves() if layer.params]
        self._detach = [layer.observe(self._observer) for layer in self._layers]
        self._sums = [0.0, 0.0]
        self._steps = self._step = 0
        self.last: tuple[float, float] | None = None

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        # The step's backward was the latest of every layer: read what it left.
        self._step = step
        norms = [self._observer.latest.pop(id(layer), None) for layer in self._layers]
        if not norms or any(h is None for h in norms):
            self.last = None
            return  # a batch of one row has no halves
        self.last = trace, grad_sq = step_estimates(norms)
        self._sums[0] += trace
        self._sums[1] += grad_sq
        self._steps += 1

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self._steps == 0:
            return
        estimate = NoiseScale(self._sums[0] / self._steps, self._sums[1] / self._steps,
                              self._steps, self._step)
        self._sums, self._steps = [0.0, 0.0], 0
        self.history.append(estimate)
        if self.on_epoch is not None:
            self.on_epoch(epoch, estimate)

    def close(self) -> None:
        for detach in self._detach:
            detach()
        self._detach = []
