"""2-D convolution as im2col followed by one matrix product."""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers.base import WeightedLayer
from cnn.layers.im2col import col2im, im2col, output_size, pad_hw


class Conv2D(WeightedLayer):
    """Cross-correlation of (N, H, W, C_in) with F filters of shape (KH, KW, C_in).

    Input (N, H, W, C_in) -> output (N, Ho, Wo, F), where
    Ho = (H + 2 * padding - KH) // stride + 1 (likewise Wo).
    Params: W (KH, KW, C_in, F) and, with bias, b (F,).
    """

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
        ho = output_size(h, kh, self.stride, self.padding)
        wo = output_size(w, kw, self.stride, self.padding)
        xp = pad_hw(x, self.padding)  # (N, Hp, Wp, C)
        cols = im2col(xp, kh, kw, self.stride).reshape(n * ho * wo, -1)  # (N*Ho*Wo, KH*KW*C)
        out = cols @ self.params["W"].reshape(-1, self.out_channels)  # (N*Ho*Wo, F)
        if self.use_bias:
            out += self.params["b"]
        self._cache = (cols, xp.shape, x.shape)
        return out.reshape(n, ho, wo, self.out_channels)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        cols, padded_shape, input_shape = self._cache
        n, ho, wo, f = dout.shape
        kh, kw = self.kernel
        d2 = dout.reshape(-1, f)  # (N*Ho*Wo, F)
        w2 = self.params["W"].reshape(-1, f)  # (KH*KW*C, F)
        self.grads["W"] = (cols.T @ d2).reshape(self.params["W"].shape)
        if self.use_bias:
            self.grads["b"] = d2.sum(axis=0)
        dcols = (d2 @ w2.T).reshape(n, ho, wo, kh, kw, self.in_channels)
        dxp = col2im(dcols, padded_shape, self.stride)  # (N, Hp, Wp, C)
        p = self.padding
        return dxp[:, p : p + input_shape[1], p : p + input_shape[2], :]

    def __repr__(self) -> str:
        kh, kw = self.kernel
        return (
            f"Conv2D({self.in_channels}->{self.out_channels}, {kh}x{kw}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.use_bias})"
        )
