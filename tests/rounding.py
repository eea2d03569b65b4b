"""How far two correct computations of the same sums may differ, for the tests that compare
results whose order of summation is not fixed: another chunking of a batch, another number
of BLAS threads. Where the order is fixed (the same chunks on any number of threads, BLAS on
one), results are compared bit for bit instead.

A sum of n products, added in any order, is off by at most gamma(n) * sum |a_i * b_i|, with
gamma(n) = n u / (1 - n u) and u the unit roundoff of the dtype (Higham, "Accuracy and
Stability of Numerical Algorithms", 2nd ed., section 3.1). Two such sums of the same
numbers differ by at most twice that.
"""

from __future__ import annotations

import numpy as np


def gamma(n: int, dtype: np.dtype | type) -> float:
    """The worst-case relative error of a sum of n products in `dtype`."""
    u = float(np.finfo(dtype).eps) / 2
    assert n * u < 1, f"no bound for sums of {n} terms in {np.dtype(dtype).name}"
    return n * u / (1 - n * u)


def assert_within_rounding(actual: np.ndarray, expected: np.ndarray, magnitude: np.ndarray,
                           length: int) -> None:
    """|actual - expected| <= 2 gamma(length) * magnitude, element by element, where
    `magnitude` is the same sums taken over absolute values (sum |a_i * b_i|)."""
    assert actual.shape == expected.shape == np.shape(magnitude)
    bound = 2 * gamma(length, actual.dtype) * magnitude
    excess = np.abs(actual.astype(np.float64) - expected) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess[worst] <= 0, (
        f"{actual[worst]!r} and {expected[worst]!r} at {worst} differ by more than the "
        f"rounding of a sum of {length} terms allows ({bound[worst]:.3g})")


def longest_sum(params: dict[str, np.ndarray], rows: int) -> int:
    """The longest sum a training step of a network with `params` takes: a weight
    gradient adds up one term per row of its layer's input (batch x output pixels, at
    most `rows`), a forward product one per weight of an output unit."""
    fan_in = max(int(np.prod(w.shape[:-1])) for w in params.values() if w.ndim > 1)
    return max(rows, fan_in)
