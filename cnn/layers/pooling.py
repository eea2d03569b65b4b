"""Max, average and global average pooling over channels-last images.

Like im2col, the windows are visited by a loop over the kernel's offsets:
each offset is one strided slice covering the whole batch at once.
"""

from __future__ import annotations

import numpy as np

from cnn.layers.base import Layer
from cnn.layers.im2col import output_size
from cnn.parallel import over_batch


def _window_slices(ho: int, wo: int, kernel: int, stride: int):
    """Yield, per kernel offset, the (rows, cols) slices that offset selects."""
    for i in range(kernel):
        for j in range(kernel):
            yield slice(i, i + stride * ho, stride), slice(j, j + stride * wo, stride)


def max_pool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C), each window's maximum and nothing else: what
    inference needs (MaxPool2D.infer), without MaxPool2D's record of the winners."""
    n, h, w, c = x.shape
    ho, wo = output_size(h, kernel, stride), output_size(w, kernel, stride)
    out = np.empty((n, ho, wo, c), dtype=x.dtype)

    def pool(images: slice) -> None:
        xs, best = x[images], out[images]
        offsets = _window_slices(ho, wo, kernel, stride)
        rows, cols = next(offsets)
        best[...] = xs[:, rows, cols, :]
        for rows, cols in offsets:
            np.maximum(best, xs[:, rows, cols, :], out=best)

    over_batch(pool, x)
    return out


class _Pool2D(Layer):
    """Shared by the pooling layers: a kernel x kernel window moved by `stride`
    (the kernel size by default, so windows do not overlap)."""

    def __init__(self, kernel: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = kernel if stride is None else stride

    def _output_hw(self, x: np.ndarray) -> tuple[int, int]:
        _, h, w, _ = x.shape
        return output_size(h, self.kernel, self.stride), output_size(w, self.kernel, self.stride)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kernel}, stride={self.stride})"


class MaxPool2D(_Pool2D):
    """(N, H, W, C) -> (N, Ho, Wo, C), the maximum of each kernel x kernel window.

    The gradient flows to one maximum per window (the first, in row-major
    order, when several tie), as in the common frameworks. Works through the
    batch in chunks, on the threads of cnn/parallel.py's scope.
    """


    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        n, _, _, c = x.shape
        ho, wo = self._output_hw(x)
        out = np.empty((n, ho, wo, c), dtype=x.dtype)
        # Which offset holds each window's maximum; strict ">" keeps the first on ties.
        # Offsets come in increasing k, so the latest better one is also the largest k.
        self._winner = np.zeros(out.shape, dtype=np.uint8)

        def pool(images: slice) -> None:
            xs, best, winner = x[images], out[images], self._winner[images]
            offsets = _window_slices(ho, wo, self.kernel, self.stride)
            rows, cols = next(offsets)
            best[...] = xs[:, rows, cols, :]
            for k, (rows, cols) in enumerate(offsets, start=1):
                candidate = xs[:, rows, cols, :]
                np.maximum(winner, (candidate > best) * np.uint8(k), out=winner)
                np.maximum(best, candidate, out=best)

        over_batch(pool, x)
        self._shape = x.shape
        return out

    def infer(self, x: np.ndarray) -> np.ndarray:
        return max_pool(x, self.kernel, self.stride)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        _, ho, wo, _ = dout.shape
        dx = np.empty(self._shape, dtype=dout.dtype)
        overlapping = self.stride < self.kernel

        def unpool(images: slice) -> None:
            dxs, douts, winner = dx[images], dout[images], self._winner[images]
            dxs[...] = 0  # pixels in no window (odd sizes) get no gradient
            for k, (rows, cols) in enumerate(_window_slices(ho, wo, self.kernel, self.stride)):
                if overlapping:  # a pixel in several windows collects from each
                    dxs[:, rows, cols, :] += douts * (winner == k)
                else:  # each pixel is in one window: write in place, no temporary
                    np.multiply(douts, winner == k, out=dxs[:, rows, cols, :])

        over_batch(unpool, dx)
        return dx


class AvgPool2D(_Pool2D):
    """(N, H, W, C) -> (N, Ho, Wo, C), the mean of each kernel x kernel window."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        ho, wo = self._output_hw(x)
        out = np.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
        for rows, cols in _window_slices(ho, wo, self.kernel, self.stride):
            out += x[:, rows, cols, :]
        self._shape = x.shape
        return out / (self.kernel * self.kernel)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        _, ho, wo, _ = dout.shape
        dx = np.zeros(self._shape, dtype=dout.dtype)
        share = dout / (self.kernel * self.kernel)
        for rows, cols in _window_slices(ho, wo, self.kernel, self.stride):
            dx[:, rows, cols, :] += share
        return dx


class GlobalAvgPool(Layer):
    """(N, H, W, C) -> (N, C), the mean over all positions."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        n, h, w, c = self._shape
        return np.broadcast_to(dout[:, None, None, :] / (h * w), self._shape).copy()
