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

import functools
import inspect
from collections.abc import Callable

import numpy as np

from cnn.registry import Registry

Initializer = Callable[[tuple[int, ...], int, int, np.random.Generator], np.ndarray]

# Each draws (shape, fan_in, fan_out, rng) -> weights; keyword arguments after rng (std,
# gain) are its knobs, which get_initializer binds.
INITIALIZERS: Registry[Initializer] = Registry("initialiser")


@INITIALIZERS.register("he", "he_normal")
def he_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


@INITIALIZERS.register("he_uniform")
def he_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


@INITIALIZERS.register("xavier", "xavier_normal")
def xavier_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)


@INITIALIZERS.register("xavier_uniform")
def xavier_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


@INITIALIZERS.register("pytorch")
def pytorch_uniform(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator
) -> np.ndarray:
    """PyTorch's default for Conv2d and Linear: kaiming_uniform with a=sqrt(5),
    which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), a third of He's variance."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


# PyTorch draws biases from the same U(+-1/sqrt(fan_in)); every other scheme starts them at zero.
pytorch_uniform.bias = pytorch_uniform  # type: ignore[attr-defined]


@INITIALIZERS.register("normal")
def normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
    std: float = 0.01,
) -> np.ndarray:
    """A fixed standard deviation, blind to the layer's fan-in."""
    if not std > 0:  # 0 would start every weight equal, so no two units could ever differ
        raise ValueError(f"std must be > 0, got {std}")
    return rng.normal(0.0, std, size=shape)


@INITIALIZERS.register("unit_normal")
def unit_normal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
    std: float = 1.0,
) -> np.ndarray:
    """`normal` at std 1: far too large for any real layer, the classic failed start."""
    return normal(shape, fan_in, fan_out, rng, std)


@INITIALIZERS.register("orthogonal")
def orthogonal(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
    gain: float = 1.0,
) -> np.ndarray:
    """The weight, seen as a matrix of inputs x outputs, has orthonormal rows or columns.

    For Dense (D_in, D_out) and Conv2D (KH, KW, C_in, F) alike the outputs are
    the last axis, so the matrix is (all other axes) x (last axis).
    """
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # makes the result uniformly distributed over orthogonal matrices
    matrix = q if rows >= cols else q.T  # (rows, cols)
    return gain * matrix.reshape(shape)


def knobs(name: str) -> dict[str, float]:
    """An initialiser's keyword arguments and their defaults, e.g. {"std": 0.01}; the
    harness reads its config schema off the same signature."""
    parameters = list(inspect.signature(INITIALIZERS[name]).parameters.values())[4:]
    return {p.name: p.default for p in parameters}


def get_initializer(name: str, **kwargs: float | None) -> Initializer:
    """Look an initialiser up by name, its knobs bound: get_initializer("normal", std=0.1).

    Knobs given as None keep the initialiser's default; a knob it does not take is an error.
    """
    given = {k: v for k, v in kwargs.items() if v is not None}
    draw = INITIALIZERS[name]
    unknown = sorted(given.keys() - knobs(name).keys())
    if unknown:
        takes = ", ".join(knobs(name)) or "no knobs"
        raise ValueError(f"initialiser {name!r} takes {takes}, not {', '.join(unknown)}")
    return functools.partial(draw, **given) if given else draw
