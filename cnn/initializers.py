"""Weight initialisers, chosen by name.

Each draws a weight array from (shape, fan_in, fan_out) with an explicit
generator. The scale is what decides whether a deep network trains: He keeps
the variance of ReLU activations constant from layer to layer, Xavier does the
same for linear/tanh units, and a fixed std (0.01, or 1.0 for `unit_normal`)
ignores the layer's width, so the signal shrinks or explodes with depth.
Biases start at zero, except under `pytorch`, which copies PyTorch's defaults
so that a run can be compared with a PyTorch implementation that kept them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], int, int, np.random.Generator], np.ndarray]


def he_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def he_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def xavier_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def xavier_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def pytorch_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    """PyTorch's default for Conv2d and Linear: kaiming_uniform with a=sqrt(5),
    which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), a third of He's variance."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


# PyTorch draws biases from the same U(+-1/sqrt(fan_in)); every other scheme starts them at zero.
pytorch_uniform.bias = pytorch_uniform  # type: ignore[attr-defined]


def normal(std: float = 0.01) -> Initializer:
    """A fixed standard deviation, blind to the layer's fan-in."""

    def draw(
        shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.normal(0.0, std, size=shape)

    return draw


def orthogonal(gain: float = 1.0) -> Initializer:
    """The weight, seen as a matrix of inputs x outputs, has orthonormal rows or columns.

    For Dense (D_in, D_out) and Conv2D (KH, KW, C_in, F) alike the outputs are
    the last axis, so the matrix is (all other axes) x (last axis).
    """

    def draw(
        shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
    ) -> np.ndarray:
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # makes the result uniformly distributed over orthogonal matrices
        matrix = q if rows >= cols else q.T  # (rows, cols)
        return gain * matrix.reshape(shape)

    return draw


_BY_NAME: dict[str, Callable[..., Initializer] | Initializer] = {
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "xavier": xavier_normal,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "pytorch": pytorch_uniform,
}
NAMES = (*_BY_NAME, "normal", "unit_normal", "orthogonal")


def get_initializer(name: str, std: float | None = None, gain: float = 1.0) -> Initializer:
    """Look an initialiser up by name: he, he_uniform, xavier, xavier_uniform,
    pytorch, normal (std, 0.01 unless given), unit_normal (std 1.0) or orthogonal (gain)."""
    if name in _BY_NAME:
        return _BY_NAME[name]  # type: ignore[return-value]
    if name == "normal":
        return normal(0.01 if std is None else std)
    if name == "unit_normal":
        return normal(1.0 if std is None else std)
    if name == "orthogonal":
        return orthogonal(gain)
    raise ValueError(f"unknown initialiser {name!r}; choose one of {', '.join(NAMES)}")
