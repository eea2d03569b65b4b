"""The loss on a plane through the trained weights (Li, Xu, Taylor, Studer and Goldstein
2018, "Visualizing the Loss Landscape of Neural Nets"):

    L(alpha, beta) = loss(theta + alpha * d1 + beta * d2)

with d1, d2 random directions, filter-normalised: each filter of a direction is scaled
to the norm of the same filter of the weights, so that a step of 1 along it moves every
filter by its own size, whatever the layer's scale. Without that, a layer whose weights
are small (or that batch norm makes scale-invariant) would look flat or sharp only
because of its scale.

What a direction holds:
- every parameter of two axes or more (convolution weights (KH, KW, C_in, F), dense
  weights (D_in, D_out)) is drawn standard normal and normalised per filter along its
  last axis: a convolution's output channel, a dense layer's output unit;
- every one-axis parameter (biases, batch norm's gamma and beta) is zero in both
  directions, as in Li et al., so that the plane moves the filters only.

Batch norm is evaluated in eval mode with the trained running statistics, which the
directions leave as they are. So (0, 0) is exactly the trained network's evaluation loss,
and every point is the network as it would be used, with only its filters moved; the
price is that a scaled filter is not normalised away by statistics of its own.
Re-estimating the statistics at each point would add a training-mode pass over the
images at each of the grid's points, doubling its time.

The grid is evaluated with `Sequential.infer` (batch norm and ReLU folded into the
convolutions), in float32, batch by batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential

Direction = dict[str, np.ndarray]


def grid_axis(points: int, span: float) -> np.ndarray:
    """`points` evenly spaced values from -span to span, (points,) float64; with an odd
    count 0.0 is among them exactly (the trained weights)."""
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    if not 0.0 < span < float("inf"):
        raise ValueError(f"span must be > 0 and finite, got {span}")
    # Rounded, and + 0.0: linspace gives -1e-17 for the middle, and rounding it gives -0.0.
    return np.round(np.linspace(-span, span, points), 10) + 0.0


def filter_normalized(weights: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """`draw` (weights' shape) with each filter (a slice along the last axis) scaled to
    the norm of the same filter of `weights`; a one-axis array gives zeros. In weights'
    dtype. A filter whose weights are all zero gets a zero direction."""
    if weights.ndim < 2:
        return np.zeros_like(weights)
    axes = tuple(range(weights.ndim - 1))
    w_norm = np.sqrt(np.sum(weights.astype(np.float64) ** 2, axis=axes))  # (F,)
    d_norm = np.sqrt(np.sum(draw.astype(np.float64) ** 2, axis=axes))  # (F,)
    scale = np.divide(w_norm, d_norm, out=np.zeros_like(w_norm), where=d_norm > 0)
    return (draw * scale).astype(weights.dtype)


def random_direction(params: Mapping[str, np.ndarray], rng: np.random.Generator) -> Direction:
    """A filter-normalised direction for `params` (name -> array, e.g. net.params), drawn
    from `rng` in the order of the names given; one-axis parameters draw nothing."""
    return {name: filter_normalized(w, rng.standard_normal(w.shape) if w.ndim >= 2 else w)
            for name, w in params.items()}


def random_directions(net: Sequential, seed: int) -> tuple[Direction, Direction]:
    """Two filter-normalised directions for `net`, drawn from np.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    return random_direction(net.params, rng), random_direction(net.params, rng)


@dataclass
class Landscape:
    """The loss and accuracy on the grid: loss[i, j] and acc[i, j] at (alphas[i],
    betas[j]); alphas (A,), betas (B,), loss and acc (A, B) float64. A loss that overflowed
    far from the trained weights is inf or NaN."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    acc: np.ndarray
    seed: int | None = None
    images: int = 0

    def at(self, alpha: float, beta: float) -> float:
        """The loss at one of the grid's points."""
        (i,) = np.flatnonzero(self.alphas == alpha)
        (j,) = np.flatnonzero(self.betas == beta)
        return float(self.loss[i, j])


def evaluate_arrays(net: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray,
                    y: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Mean loss (batch means weighted by batch size) and accuracy of (N, H, W, C) images
    `x` with labels `y` (N,), by the inference pass, batch by batch."""
    total, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        logits = net.infer(x[start:start + batch_size])  # (b, K)
        labels = y[start:start + batch_size]
        total += loss_fn.forward(logits, labels) * len(labels)
        correct += int((logits.argmax(axis=1) == labels).sum())
    return total / len(y), correct / len(y)


def loss_landscape(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    x: np.ndarray,
    y: np.ndarray,
    directions: tuple[Direction, Direction],
    alphas: np.ndarray,
    betas: np.ndarray,
    batch_size: int = 500,
) -> Landscape:
    """The loss and accuracy of the network at theta + alpha * d1 + beta * d2 for every
    alpha and beta, on images x (N, H, W, C) already transformed, labels y (N,).

    The parameters are moved in place and put back afterwards (exactly: the trained
    values are kept aside); buffers (batch-norm statistics) are never touched.
    """
    if len(y) == 0:
        raise ValueError("cannot evaluate a landscape on no images")
    d1, d2 = directions
    params = net.params
    missing = sorted(params.keys() - d1.keys()) or sorted(params.keys() - d2.keys())
    if missing:
        raise ValueError(f"the directions have no values for {missing[:5]}")
    trained = {name: w.copy() for name, w in params.items()}
    moved = [name for name in params if d1[name].any() or d2[name].any()]
    alphas, betas = np.asarray(alphas, np.float64), np.asarray(betas, np.float64)
    loss = np.empty((len(alphas), len(betas)))
    acc = np.empty((len(alphas), len(betas)))
    try:
        with np.errstate(all="ignore"):  # far out a loss may overflow: inf
            for i, alpha in enumerate(alphas):
                for j, beta in enumerate(betas):
                    for name in moved:
                        w = params[name]
                        dtype = w.dtype.type
                        np.multiply(d1[name], dtype(alpha), out=w)
                        w += dtype(beta) * d2[name]
                        w += trained[name]
                    loss[i, j], acc[i, j] = evaluate_arrays(net, loss_fn, x, y, batch_size)
    finally:
        for name, w in params.items():
            w[...] = trained[name]
    return Landscape(alphas, betas, loss, acc, images=len(y))
