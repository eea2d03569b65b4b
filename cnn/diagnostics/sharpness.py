"""Sharpness: the top eigenvalue of the training loss's Hessian with respect to every weight.

Gradient descent at rate lr is stable on a quadratic only where its curvature stays below
2/lr (with momentum, a higher threshold: `stability_threshold`). Cohen et al. (ICLR 2021)
found that full-batch training raises the sharpness until it reaches that threshold
("progressive sharpening") and then hovers there while the loss keeps falling, unevenly:
the Edge of Stability. A run whose sharpness sits far above its threshold is diverging.

No autograd is needed. A Hessian-vector product is a central difference of two gradients,
which backpropagation already computes,

    H v  ~  [g(w + r v) - g(w - r v)] / 2r,

and the Lanczos iteration turns a few such products into the top eigenvalue.

What is measured: the mean loss over a fixed set of images `x`, taken in training mode
batch by batch (`batch_size`), exactly as the optimiser sees it. So with batch norm each
batch is normalised by its own statistics, which is part of the function the steps follow
(the running averages are put back afterwards: measuring changes nothing). Dropout masks
are drawn afresh for every gradient from the same generator state, so every gradient is
of the same function. Weight decay is not part of the loss (it adds its coefficient to
every eigenvalue, and `stability_threshold` is for the loss alone).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cnn.layers.base import Layer, snapshot_generators
from cnn.losses import SoftmaxCrossEntropy

Vector = list[np.ndarray]  # one array per parameter, in the network's order


def stability_threshold(lr: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """The largest curvature on which cnn.optim.SGD at `lr` does not diverge: 2/lr, or
    2(1+m)/lr with heavy-ball momentum m, or (2+2m)/(lr(1+2m)) with Nesterov's.

    On a quadratic of curvature h, SGD's velocity and weight evolve linearly; the threshold
    is the h at which that 2x2 map gets an eigenvalue of -1 (tests/test_sharpness.py
    checks each against the optimiser itself)."""
    if lr <= 0:
        raise ValueError(f"the learning rate must be > 0, got {lr}")
    if nesterov:
        return (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))
    return 2.0 * (1.0 + momentum) / lr


def _dot(a: Vector, b: Vector) -> float:
    return float(sum(np.vdot(p, q) for p, q in zip(a, b, strict=True)))


def _norm(a: Vector) -> float:
    return _dot(a, a) ** 0.5


class LossGradient:
    """The mean loss over fixed images and its gradient, at the network's weights moved by
    a step along a direction; the weights, running statistics and generators are restored
    after each call."""

    def __init__(self, net: Layer, loss_fn: SoftmaxCrossEntropy, x: np.ndarray,
                 y: np.ndarray, batch_size: int) -> None:
        self.net, self.loss_fn, self.x, self.y = net, loss_fn, x, y
        self.batch_size = batch_size
        self.keys = list(net.params)
        self.weights = [net.params[k].copy() for k in self.keys]  # the point measured at
        self.weight_norm = _norm(self.weights)

    def __call__(self, direction: Vector | None = None, step: float = 0.0
                 ) -> tuple[float, Vector]:
        params, n = self.net.params, len(self.y)
        buffers = {k: b.copy() for k, b in self.net.buffers.items()}
        restore_generators = snapshot_generators(self.net)
        if direction is not None:
            for key, w, d in zip(self.keys, self.weights, direction, strict=True):
                params[key][...] = w + step * d
        total, grad = 0.0, [np.zeros_like(w) for w in self.weights]
        try:
            for start in range(0, n, self.batch_size):
                end = start + self.batch_size
                xb, yb = self.x[start:end], self.y[start:end]  # (B, H, W, C), (B,)
                share = len(yb) / n  # the batch's weight in the mean over all images
                total += self.loss_fn.forward(self.net.forward(xb, training=True), yb) * share
                self.net.backward(self.loss_fn.backward())
                grads = self.net.grads
                for g, key in zip(grad, self.keys, strict=True):
                    g += grads[key] * share
        finally:
            for key, w in zip(self.keys, self.weights, strict=True):
                params[key][...] = w
            for key, b in self.net.buffers.items():
                b[...] = buffers[key]
            restore_generators()
        return total, grad


def hessian_vector_product(gradient: LossGradient, v: Vector, rel_step: float) -> Vector:
    """H v by the central difference of two gradients, with a step of rel_step times the
    weights' norm (v has norm 1)."""
    r = rel_step * max(gradient.weight_norm, 1.0)
    _, plus = gradient(v, r)
    _, minus = gradient(v, -r)
    return [(p - m) / (2.0 * r) for p, m in zip(plus, minus, strict=True)]


@dataclass
class Sharpness:
    """The top eigenvalue, how many Hessian-vector products it took, the Ritz value after
    each (Lanczos's running estimate, which rises to the eigenvalue from below), and its
    eigenvector (unit norm), from which the next measurement can start."""

    value: float
    products: int
    history: list[float] = field(default_factory=list)
    vector: Vector = field(default_factory=list, repr=False)


def lanczos_top(product: Callable[[Vector], Vector], start: Vector, iterations: int,
                tol: float) -> Sharpness:
    """The largest eigenvalue of the symmetric operator `product` by Lanczos with full
    reorthogonalisation, stopped when the top Ritz pair's residual falls below tol times
    its value (or after `iterations` products)."""
    basis: list[Vector] = []
    alphas: list[float] = []
    betas: list[float] = []
    v = [s / _norm(start) for s in start]
    history: list[float] = []
    for _ in range(iterations):
        basis.append(v)
        w = product(v)
        alphas.append(_dot(w, v))
        for q in basis:  # full reorthogonalisation: the products are only nearly symmetric
            c = _dot(w, q)
            w = [wi - c * qi for wi, qi in zip(w, q, strict=True)]
        t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        values, vectors = np.linalg.eigh(t)
        history.append(float(values[-1]))
        beta = _norm(w)
        # |H u - θ u| of the top Ritz pair (θ, u) is beta times u's last coordinate in the
        # basis; it bounds how far θ is from an eigenvalue, where a pause in θ does not.
        residual = beta * abs(vectors[-1, -1])
        if residual <= tol * abs(history[-1]) or beta < 1e-12 * max(abs(history[-1]), 1.0):
            break
        betas.append(beta)
        v = [wi / beta for wi in w]
    top = vectors[:, -1]  # the Ritz vector in the basis's coordinates
    vector = [sum(c * q[i] for c, q in zip(top, basis, strict=True)) for i in range(len(v))]
    return Sharpness(history[-1], len(history), history, vector)


def sharpness(net: Layer, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray, *,
              batch_size: int = 500, iterations: int = 20, tol: float = 1e-3,
              rel_step: float | None = None, seed: int = 0,
              dtype: np.dtype | type | None = np.float64,
              start: Vector | None = None) -> Sharpness:
    """The top eigenvalue of the Hessian of the mean loss over (x, y) (N, H, W, C), (N,).

    It works on a copy of the network, in float64 by default; dtype=None keeps the
    network's. rel_step (times the weights' norm) defaults to the square root of the
    dtype's epsilon, 1.5e-8 in float64: small enough that no ReLU or max-pool switches
    between w - rv and w + rv, so that the difference sees the loss's own curvature. A
    larger step crosses the kinks of thousands of units, and their jumps in the gradient
    add a term that has nothing to do with the Hessian and grows as the step shrinks
    towards the kinks' spacing (measured on the seed network: 5.9, 15 and 25 at relative
    steps 1e-4, 6e-6 and 1e-6, against 1.705 from PyTorch's double backprop, which the
    default matches to 8 digits). float32 cannot take so small a step, hence float64.
    The start direction is `start` (an earlier measurement's vector: a few products then
    suffice) or drawn from `seed`.
    """
    work = _detached_copy(net)
    if dtype is not None:
        work.to(dtype)
        x = x.astype(dtype)
    gradient = LossGradient(work, loss_fn, x, y, batch_size)
    if rel_step is None:
        rel_step = float(np.finfo(gradient.weights[0].dtype).eps) ** 0.5
    if start is None:
        rng = np.random.default_rng(seed)
        start = [rng.standard_normal(w.shape) for w in gradient.weights]
    start = [s.astype(w.dtype) for s, w in zip(start, gradient.weights, strict=True)]
    return lanczos_top(lambda v: hessian_vector_product(gradient, v, rel_step), start,
                       iterations, tol)


def _detached_copy(net: Layer) -> Layer:
    """A deep copy of the network without its observers (a monitor must not see, nor be
    copied with, the measurement's passes)."""
    modules = [m for _, m in net.named_modules()]
    observers = [m.observers for m in modules]
    for m in modules:
        m.observers = []
    try:
        return copy.deepcopy(net)
    finally:
        for m, kept in zip(modules, observers, strict=True):
            m.observers = kept


class SharpnessMonitor:
    """Training callback: the sharpness every `every` epochs, on fixed images, beside the
    threshold the optimiser's current rate and momentum set (less its weight decay, which
    adds to every curvature the optimiser sees: `threshold`).

    It adds `sharpness` and `sharpness_threshold` to the epoch's metrics, so it must come
    before the callbacks that log them. `measure()` before training gives the untrained
    network's (the harness logs it at step 0). Each
    measurement starts from the last one's eigenvector, so a few products suffice."""

    def __init__(self, net: Layer, loss_fn: SoftmaxCrossEntropy, x: np.ndarray,
                 y: np.ndarray, optimizer: object, every: int, batch_size: int,
                 seed: int = 0) -> None:
        if every < 1:
            raise ValueError(f"the sharpness is measured every >= 1 epochs, got {every}")
        self.net, self.loss_fn, self.x, self.y = net, loss_fn, x, y
        self.optimizer, self.every, self.batch_size, self.seed = optimizer, every, batch_size, seed
        self._vector: Vector | None = None

    def threshold(self) -> float | None:
        """The stability threshold of SGD at its current rate; None for other optimisers,
        or a rate of 0."""
        opt = self.optimizer
        if not hasattr(opt, "nesterov") or opt.lr <= 0:
            return None
        return (stability_threshold(opt.lr, opt.momentum, opt.nesterov)
                - getattr(opt, "weight_decay", 0.0))

    def measure(self) -> dict[str, float]:
        found = sharpness(self.net, self.loss_fn, self.x, self.y, batch_size=self.batch_size,
                          seed=self.seed, start=self._vector)
        self._vector = found.vector
        metrics = {"sharpness": found.value}
        if (threshold := self.threshold()) is not None:
            metrics["sharpness_threshold"] = threshold
        return metrics

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch % self.every == 0:
            metrics.update(self.measure())
