"""Per-channel work on channels-last arrays, arranged for NumPy's fast paths.

Channels are the last axis, so a per-channel sum or bias touches rows of only C
numbers, where NumPy's loops are slow. Both helpers reshape the work into long
rows instead: batch norm uses them for its statistics, convolutions for the bias.
"""

from __future__ import annotations

import numpy as np


def column_sums(x2: np.ndarray) -> np.ndarray:
    """(M, C) -> (C,), the sum of each column, as a matrix-vector product.

    NumPy's x2.sum(axis=0) walks M rows of only C numbers each; the BLAS product
    is several times faster when C is small (0.4 against 3.3 ms for 131,072 x 16).
    """
    return np.ones(x2.shape[0], dtype=x2.dtype) @ x2


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
