"""Finite-difference gradient checks for any layer or whole network.

Backpropagation is checked against centred differences,
    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),
whose error is O(eps^2). Run in float64: in float32 the rounding error of f
swamps the difference. The agreement is measured as a relative error,
    |a - n| / max(|a| + |n|, tiny)  (norms over all entries),
which is ~1e-9 or less for a correct layer and ~1 for a wrong one.

Layers that draw random numbers (dropout) replay the same draws at every
evaluation: their generator's state is restored before each forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import numpy as np

from cnn.layers.base import Layer, snapshot_generators
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 0.0) -> float:
    """|a - n| / (|a| + |n|); 0 when both are within `floor` of zero, where finite
    differences cannot tell a gradient from zero and the ratio would be noise over noise."""
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    if scale <= floor:
        return 0.0
    return float(diff / max(scale, 1e-300))


def resolution(value: float, eps: float) -> float:
    """The smallest derivative centred differences of step `eps` can tell from zero, for
    a function of about `value`: each evaluation is off by a few units of its last place,
    which the quotient divides by 2 eps. A true gradient of exactly zero (a bias followed
    by batch norm, which subtracts it again) comes out at about this size."""
    return 100 * float(np.finfo(np.float64).eps) * max(abs(value), 1.0) / eps


def numerical_gradient(
    f: Callable[[], float], x: np.ndarray, eps: float = 1e-6, indices: Iterable | None = None
) -> np.ndarray:
    """Centred differences of the scalar f() with respect to x, perturbed in place.

    `indices` limits the check to some entries (others stay 0) for large arrays.
    """
    grad = np.zeros_like(x)
    for idx in indices if indices is not None else np.ndindex(x.shape):
        original = x[idx]
        x[idx] = original + eps
        f_plus = f()
        x[idx] = original - eps
        f_minus = f()
        x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def _sample_indices(shape: tuple[int, ...], limit: int | None, rng: np.random.Generator):
    total = int(np.prod(shape))
    if limit is None or total <= limit:
        return None
    flat = rng.choice(total, size=limit, replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def _compare(
    f: Callable[[], float],
    arrays: list[tuple[str, np.ndarray]],
    analytic: dict[str, np.ndarray],
    eps: float,
    max_checks: int | None,
    rng: np.random.Generator,
) -> dict[str, float]:
    errors = {}
    noise = resolution(f(), eps)
    for name, array in arrays:
        idx = _sample_indices(array.shape, max_checks, rng)
        numeric = numerical_gradient(f, array, eps, idx)
        if idx is not None:
            numeric = np.array([numeric[i] for i in idx])
            wanted = np.array([analytic[name][i] for i in idx])
        else:
            wanted = analytic[name]
        errors[name] = relative_error(wanted, numeric, floor=noise * np.sqrt(numeric.size))
    return errors


def check_layer(
    layer: Layer,
    x: np.ndarray,
    *,
    training: bool = True,
    eps: float = 1e-6,
    max_checks: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Relative errors of a layer's input and parameter gradients.

    The scalar checked is sum(forward(x) * R) for a fixed random R, so every
    output entry contributes. Returns {"x": err, "W": err, ...}.
    """
    if x.dtype != np.float64 or any(p.dtype != np.float64 for p in layer.params.values()):
        raise TypeError(
            "gradient checks need float64 inputs and parameters: use layer.to(np.float64)"
        )
    rng = np.random.default_rng(seed)
    restore = snapshot_generators(layer)
    upstream = rng.standard_normal(layer.forward(x, training=training).shape)

    def f() -> float:
        restore()
        return float((layer.forward(x, training=training) * upstream).sum())

    f()
    analytic = {"x": layer.backward(upstream), **{k: g.copy() for k, g in layer.grads.items()}}
    return _compare(f, [("x", x), *layer.params.items()], analytic, eps, max_checks, rng)


def check_network(
    net: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    *,
    loss: SoftmaxCrossEntropy | None = None,
    training: bool = True,
    eps: float = 1e-6,
    max_checks: int | None = 20,
    seed: int = 0,
    params: Collection[str] | None = None,
) -> dict[str, float]:
    """Relative error of the loss gradient for the input and every parameter of a network.

    Checks up to `max_checks` random entries per array (all when None), of the parameters
    named in `params` ("conv1.W", ...; all when None). Returns {"input": err, "conv1.W": err,
    ...}.
    """
    if net.dtype != np.float64 or x.dtype != np.float64:
        raise TypeError(
            "gradient checks need float64: use net.to(np.float64) and x.astype(np.float64)"
        )
    loss = loss or SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    restore = snapshot_generators(net)

    def f() -> float:
        restore()
        return loss.forward(net.forward(x, training=training), y)

    f()
    wanted, net.input_grad = net.input_grad, True  # the check covers the input too
    try:
        analytic = {
            "input": net.backward(loss.backward()),
            **{k: g.copy() for k, g in net.grads.items()},
        }
    finally:
        net.input_grad = wanted
    chosen = [(k, v) for k, v in net.params.items() if params is None or k in params]
    return _compare(f, [("input", x), *chosen], analytic, eps, max_checks, rng)
