"""im2col and its adjoint col2im for channels-last images.

A convolution becomes one matrix product once every receptive field is laid
out as a row. With (N, H, W, C) images each kernel offset (i, j) selects one
strided slice of the padded input, so the scatter back (col2im) is a loop over
the KH*KW offsets only, each covering the whole batch at once.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Spatial output size of a sliding window; raises if the window does not fit."""
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"a window of {kernel} with stride {stride} and padding {padding} "
            f"does not fit an input of size {size}"
        )
    return out


def pad_hw(x: np.ndarray, padding: int | tuple[int, int]) -> np.ndarray:
    """Zero-pad the two spatial axes of (N, H, W, C), by `padding` on every side or by
    (rows, columns): (N, H + 2 * rows, W + 2 * columns, C)."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    if ph == pw == 0:
        return x
    n, h, w, c = x.shape
    xp = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    # Only the border is zeroed: np.pad, or zeroing all of xp, would write everything twice.
    xp[:, :ph], xp[:, ph + h :] = 0, 0
    xp[:, ph : ph + h, :pw], xp[:, ph : ph + h, pw + w :] = 0, 0
    xp[:, ph : ph + h, pw : pw + w] = x
    return xp


def im2col(
    xp: np.ndarray, kh: int, kw: int, stride: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Gather receptive fields of an already padded batch.

    xp: (N, Hp, Wp, C) -> cols: (N, Ho, Wo, KH, KW, C), written into `out` if given.

    In channels-last memory one kernel row of a window, its KW pixels of C
    channels, is KW*C consecutive numbers. So all windows are a strided view
    of shape (N, Ho, Wo, KH, KW*C) over xp, and one copy of that view builds
    the patch matrix, moving whole kernel rows instead of C numbers at a time.
    """
    xp = np.ascontiguousarray(xp)  # the view below needs each pixel's channels adjacent
    n, hp, wp, c = xp.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    sn, sh, sw, sc = xp.strides
    windows = as_strided(
        xp, (n, ho, wo, kh, kw * c), (sn, stride * sh, stride * sw, sh, sc), writeable=False
    )
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=xp.dtype) if out is None else out
    cols.reshape(n, ho, wo, kh, kw * c)[...] = windows
    return cols


def im2col_channels_first(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """The same patches as im2col, transposed, for inputs with few channels.

    xp: (N, Hp, Wp, C) -> (KH*KW*C, N*Ho*Wo); row (i, j, c) holds channel c of every
    window's pixel at offset (i, j). With 3 channels, im2col's copies move kernel rows
    of only KW*C = 9 numbers; here each copy moves image rows of Wo numbers, once the
    (small) input is in channels-first order, which is over twice as fast.
    """
    n, hp, wp, c = xp.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    planes = np.ascontiguousarray(xp.transpose(3, 0, 1, 2))  # (C, N, Hp, Wp)
    cols = np.empty((kh, kw, c, n, ho, wo), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[i, j] = planes[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
    return cols.reshape(kh * kw * c, n * ho * wo)


def col2im(dcols: np.ndarray, dxp: np.ndarray, stride: int) -> np.ndarray:
    """Adjoint of im2col: add each offset's gradient back into place, in `dxp`.

    dcols: (N, Ho, Wo, KH, KW, C) -> dxp: (N, Hp, Wp, C), zeroed first.
    Overlapping windows add up, which is why this sums instead of copying.
    """
    _, ho, wo, kh, kw, _ = dcols.shape
    dxp[...] = 0
    for i in range(kh):
        for j in range(kw):
            dxp[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :] += dcols[
                :, :, :, i, j, :
            ]
    return dxp
