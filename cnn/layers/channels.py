"""Per-channel work on channels-last arrays, arranged for NumPy's fast paths.

Channels are the last axis, so a per-channel sum or bias walks rows of only C
numbers, where NumPy's loops are slow. These helpers take faster paths with the
same result: batch norm uses them for its statistics, convolutions for the bias.
"""

from __future__ import annotations

import numpy as np


def column_sums(x2: np.ndarray) -> np.ndarray:
    """(M, C) -> (C,), the sum of each column.

    NumPy's x2.sum(axis=0) walks M rows of only C numbers each; einsum's loop is
    several times faster when C is small (0.8 against 7 ms for 131,072 x 16). A
    matrix-vector product with ones is faster still, but BLAS splits it between
    threads in ways that change its rounding, and a run must give the same
    numbers whatever the number of threads (a parallel sweep's jobs get fewer).
    """
    return np.einsum("mc->c", x2)


def per_channel(
    x: np.ndarray, op: np.ufunc, vec: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """op(x, vec) for channels-last x (N, ..., C) and vec (C,); returns x's shape.

    NumPy broadcasts fastest along long rows, so each sample is seen as one row of
    H*W*C values and vec is repeated H*W times to match it, instead of
    broadcasting over N*H*W rows of only C values (2.5x faster for C = 16).
    """
    rows = x.reshape(x.shape[0], -1)  # (N, H*W*C)
    long_vec = np.tile(vec.astype(x.dtype, copy=False), rows.shape[1] // vec.shape[0])
    return op(rows, long_vec, out=None if out is None else out.reshape(rows.shape)).reshape(x.shape)
