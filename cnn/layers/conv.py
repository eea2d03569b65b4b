"""2-D convolution as im2col followed by one matrix product."""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers.base import WeightedLayer
from cnn.layers.im2col import batch_chunks, col2im, im2col, output_size, pad_hw


class Conv2D(WeightedLayer):
    """Cross-correlation of (N, H, W, C_in) with F filters of shape (KH, KW, C_in).

    Input (N, H, W, C_in) -> output (N, Ho, Wo, F), where
    Ho = (H + 2 * padding - KH) // stride + 1 (likewise Wo).
    Params: W (KH, KW, C_in, F) and, with bias, b (F,).

    The batch is processed in chunks of about `chunk_bytes` of patches, so the
    patch matrix stays in the CPU cache; the result does not depend on it.
    """

    chunk_bytes = 4 * 2**20

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        *,
        init: str | Initializer = "he",
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.kernel = (kh, kw)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding, self.use_bias = stride, padding, bias
        self.params["W"] = np.zeros((kh, kw, in_channels, out_channels), dtype=dtype)
        if bias:
            self.params["b"] = np.zeros(out_channels, dtype=dtype)
        self.reset_parameters(init, rng or np.random.default_rng(0))

    @property
    def fans(self) -> tuple[int, int]:
        kh, kw = self.kernel
        return kh * kw * self.in_channels, kh * kw * self.out_channels

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        n, h, w, _ = x.shape
        kh, kw = self.kernel
        f = self.out_channels
        ho = output_size(h, kh, self.stride, self.padding)
        wo = output_size(w, kw, self.stride, self.padding)
        xp = pad_hw(x, self.padding)  # (N, Hp, Wp, C)
        w2 = self.params["W"].reshape(-1, f)  # (KH*KW*C, F)
        out = np.empty((n, ho, wo, f), dtype=x.dtype)
        for chunk in self._chunks(xp, ho, wo):
            cols = im2col(xp[chunk], kh, kw, self.stride)  # (n, Ho, Wo, KH, KW, C)
            np.matmul(cols.reshape(-1, w2.shape[0]), w2, out=out[chunk].reshape(-1, f))
        if self.use_bias:
            out += self.params["b"]
        # Backward rebuilds the patches from xp: cheaper than keeping 9x the input.
        self._cache = (xp, x.shape)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xp, input_shape = self._cache
        n, ho, wo, f = dout.shape
        kh, kw = self.kernel
        w2 = self.params["W"].reshape(-1, f)  # (KH*KW*C, F)
        dw = np.zeros_like(w2)
        dxp = np.empty_like(xp)  # (N, Hp, Wp, C)
        for chunk in self._chunks(xp, ho, wo):
            cols = im2col(xp[chunk], kh, kw, self.stride).reshape(-1, w2.shape[0])
            d2 = dout[chunk].reshape(-1, f)  # (n*Ho*Wo, F)
            dw += cols.T @ d2
            dcols = (d2 @ w2.T).reshape(-1, ho, wo, kh, kw, self.in_channels)
            col2im(dcols, dxp[chunk], self.stride)
        self.grads["W"] = dw.reshape(self.params["W"].shape)
        if self.use_bias:
            self.grads["b"] = dout.reshape(-1, f).sum(axis=0)
        p = self.padding
        return dxp[:, p : p + input_shape[1], p : p + input_shape[2], :]

    def _chunks(self, xp: np.ndarray, ho: int, wo: int) -> list[slice]:
        kh, kw = self.kernel
        patch_bytes = ho * wo * kh * kw * xp.shape[3] * xp.itemsize  # one image's patch matrix
        return batch_chunks(xp.shape[0], patch_bytes, self.chunk_bytes)

    def __repr__(self) -> str:
        kh, kw = self.kernel
        return (
            f"Conv2D({self.in_channels}->{self.out_channels}, {kh}x{kw}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.use_bias})"
        )
