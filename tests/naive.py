"""Loop-by-loop reference implementations: slow, obvious, and the ground truth
the vectorised layers are tested against. Channels-last, like the library."""

from __future__ import annotations

import numpy as np


def conv2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int
) -> np.ndarray:
    """x (N, H, W, C), w (KH, KW, C, F) -> (N, Ho, Wo, F)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, ho, wo, f), dtype=x.dtype)
    for i in range(n):
        for r in range(ho):
            for s in range(wo):
                window = xp[i, r * stride : r * stride + kh, s * stride : s * stride + kw, :]
                for k in range(f):
                    out[i, r, s, k] = np.sum(window * w[:, :, :, k]) + (0 if b is None else b[k])
    return out


def conv2d_backward(x, w, stride, padding, dout):
    """Gradients (dx, dw, db) of sum(conv2d(x, w) * dout), one window at a time."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    _, ho, wo, _ = dout.shape
    for i in range(n):
        for r in range(ho):
            for s in range(wo):
                rows, cols = slice(r * stride, r * stride + kh), slice(s * stride, s * stride + kw)
                for k in range(f):
                    dw[:, :, :, k] += xp[i, rows, cols, :] * dout[i, r, s, k]
                    dxp[i, rows, cols, :] += w[:, :, :, k] * dout[i, r, s, k]
    dx = dxp[:, padding : padding + h, padding : padding + wd, :]
    return dx, dw, dout.sum(axis=(0, 1, 2))


def pool2d(x: np.ndarray, kernel: int, stride: int, reduce) -> np.ndarray:
    """Apply `reduce` (np.max or np.mean) to every window of (N, H, W, C)."""
    n, h, w, c = x.shape
    ho, wo = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for i in range(n):
        for r in range(ho):
            for s in range(wo):
                for ch in range(c):
                    window = x[
                        i, r * stride : r * stride + kernel, s * stride : s * stride + kernel, ch
                    ]
                    out[i, r, s, ch] = reduce(window)
    return out


def maxpool2d_backward(x, kernel, stride, dout):
    """Route each window's gradient to its first maximum (row-major), window by window."""
    dx = np.zeros_like(x)
    n, ho, wo, c = dout.shape
    for i in range(n):
        for r in range(ho):
            for s in range(wo):
                for ch in range(c):
                    window = x[
                        i, r * stride : r * stride + kernel, s * stride : s * stride + kernel, ch
                    ]
                    a, bb = np.unravel_index(np.argmax(window), window.shape)
                    dx[i, r * stride + a, s * stride + bb, ch] += dout[i, r, s, ch]
    return dx
