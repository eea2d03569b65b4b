"""2-D convolution as im2col followed by one matrix product."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cnn.initializers import Initializer
from cnn.layers.base import Inference, Layer, WeightedLayer
from cnn.layers.channels import column_sums, per_channel
from cnn.layers.im2col import col2im, im2col, im2col_channels_first, output_size, pad_hw
from cnn.parallel import batch_chunks, map_chunks

# Up to this many input channels (an image's 1 or 3), patches are gathered channels-first.
FEW_CHANNELS = 4


def fold_affine(
    weights: np.ndarray, bias: np.ndarray | None, affine: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The weights (KH, KW, C_in, F) and bias (F,) of a convolution followed by the map
    y = scale * x + shift per output channel: conv(x; W * scale) + (b * scale + shift).
    The convolution's own when `affine` is None."""
    if affine is None:
        return weights, bias
    scale, shift = affine  # (F,), (F,)
    if bias is not None:
        shift = shift + bias * scale
    return weights * scale, shift.astype(weights.dtype)  # scale broadcasts over F, the last axis


class Conv2D(WeightedLayer):
    """Cross-correlation of (N, H, W, C_in) with F filters of shape (KH, KW, C_in).

    Input (N, H, W, C_in) -> output (N, Ho, Wo, F), where
    Ho = (H + 2 * padding - KH) // stride + 1 (likewise Wo).
    Params: W (KH, KW, C_in, F) and, with bias, b (F,).

    The batch is processed in chunks of about `chunk_bytes` of patches, so the
    patch matrix stays in the CPU cache, on the threads of cnn/parallel.py's
    scope; the result depends on neither.
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
        out = self.convolve(x, self.params["W"], self.params.get("b"))  # (N, Ho, Wo, F)
        # Backward pads and gathers the patches again, chunk by chunk: cheaper than
        # keeping 9x the input.
        self._cache = x
        return out

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.convolve(x, self.params["W"], self.params.get("b"))

    def fold(self, after: Sequence[Layer]) -> tuple[Inference, int]:
        """One convolution for this layer, the per-channel affine map after it (batch norm
        in evaluation mode, Layer.channel_affine) folded into its weights, and the
        activation after that applied to each chunk while it is in the cache."""
        affine = after[0].channel_affine() if after else None
        absorbed = affine is not None
        # A layer that is affine and activation both (a fused batch norm and ReLU) gives its
        # own activation; else the activation is the next layer's, if it is one.
        activation = after[0].in_place_activation() if absorbed else None
        if activation is None and len(after) > absorbed:
            activation = after[absorbed].in_place_activation()
            absorbed += activation is not None
        weights, bias = fold_affine(self.params["W"], self.params.get("b"), affine)
        return (lambda x: self.convolve(x, weights, bias, activation)), absorbed

    def convolve(
        self, x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None,
        activation: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """(N, H, W, C_in) -> (N, Ho, Wo, F): x convolved with `weights` (KH, KW, C_in, F),
        plus `bias` (F,) if given, then `activation` in place if given; caches nothing.

        forward passes the layer's own parameters; `fold` passes weights with batch norm
        folded in, and the activation after it: each chunk's output gets its bias and
        activation while it is still in the cache.
        """
        n, h, w, _ = x.shape
        kh, kw = self.kernel
        f = self.out_channels
        ho = output_size(h, kh, self.stride, self.padding)
        wo = output_size(w, kw, self.stride, self.padding)
        w2 = weights.reshape(-1, f)  # (KH*KW*C, F)
        out = np.empty((n, ho, wo, f), dtype=x.dtype)

        def convolve(chunk: slice) -> None:
            np.matmul(self._patch_rows(x[chunk]), w2, out=out[chunk].reshape(-1, f))
            if bias is not None:
                per_channel(out[chunk], np.add, bias, out=out[chunk])
            if activation is not None:
                activation(out[chunk])

        map_chunks(convolve, self._chunks(x, ho, wo))
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        x = self._cache
        n, ho, wo, f = dout.shape
        kh, kw = self.kernel
        w2 = self.params["W"].reshape(-1, f)  # (KH*KW*C, F)

        def weight_grad(chunk: slice) -> tuple[np.ndarray, np.ndarray | None]:
            d = dout[chunk].reshape(-1, f)  # (n*Ho*Wo, F): read once for both, in cache
            db = column_sums(d) if self.use_bias else None  # (F,)
            return self._patch_rows(x[chunk]).T @ d, db  # (KH*KW*C, F), (F,)

        dw, db = np.zeros_like(w2), np.zeros(f, dtype=w2.dtype)
        for part_w, part_b in map_chunks(weight_grad, self._chunks(x, ho, wo)):
            dw += part_w  # in chunk order, so the sums' rounding is the same on any threads
            if self.use_bias:
                db += part_b
        self.grads["W"] = dw.reshape(self.params["W"].shape)
        if self.use_bias:
            self.grads["b"] = db
        if not self.input_grad:
            return None
        if self.stride == 1 and self.padding < min(kh, kw):
            return self._input_grad_as_convolution(dout, x.shape)
        return self._input_grad_by_scatter(dout, x.shape)

    def _patch_rows(self, images: np.ndarray) -> np.ndarray:
        """(n, H, W, C) -> (n*Ho*Wo, KH*KW*C): padded, one receptive field a row.

        For an image's few channels (C <= FEW_CHANNELS) the matrix is built transposed,
        and this is its column-major view: BLAS takes either layout."""
        kh, kw = self.kernel
        xp = pad_hw(images, self.padding)  # (n, Hp, Wp, C)
        if self.in_channels <= FEW_CHANNELS:
            return im2col_channels_first(xp, kh, kw, self.stride).T  # (n*Ho*Wo, KH*KW*C)
        cols = im2col(xp, kh, kw, self.stride)  # (n, Ho, Wo, KH, KW, C)
        return cols.reshape(-1, kh * kw * self.in_channels)

    def _input_grad_as_convolution(self, dout: np.ndarray, input_shape: tuple) -> np.ndarray:
        """With stride 1, dx is a convolution of the output gradient, padded by
        K - 1 - padding, with the kernel flipped in space and its channel axes
        swapped: every input pixel collects from the outputs whose windows saw it."""
        kh, kw = self.kernel
        n, h, w, c = input_shape
        flipped = self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, c)  # (KH*KW*F, C)
        dx = np.empty(input_shape, dtype=dout.dtype)  # (N, H, W, C)

        def convolve(chunk: slice) -> None:
            dpad = pad_hw(dout[chunk], (kh - 1 - self.padding, kw - 1 - self.padding))
            cols = im2col(dpad, kh, kw, 1).reshape(-1, flipped.shape[0])  # (n*H*W, KH*KW*F)
            np.matmul(cols, flipped, out=dx[chunk].reshape(-1, c))

        map_chunks(convolve, self._chunks(dout, h, w))
        return dx

    def _input_grad_by_scatter(self, dout: np.ndarray, input_shape: tuple) -> np.ndarray:
        """Any stride: spread each window's gradient back over the pixels it covered."""
        kh, kw = self.kernel
        f = self.out_channels
        w2t = self.params["W"].reshape(-1, f).T  # (F, KH*KW*C)
        n, h, w, c = input_shape
        p = self.padding
        dxp = np.empty((n, h + 2 * p, w + 2 * p, c), dtype=dout.dtype)  # (N, Hp, Wp, C)
        _, ho, wo, _ = dout.shape

        def scatter(chunk: slice) -> None:
            dcols = (dout[chunk].reshape(-1, f) @ w2t).reshape(-1, ho, wo, kh, kw, self.in_channels)
            col2im(dcols, dxp[chunk], self.stride)

        map_chunks(scatter, self._chunks(dxp, ho, wo))
        return dxp[:, p : p + h, p : p + w, :]

    def _chunks(self, images: np.ndarray, ho: int, wo: int) -> list[slice]:
        """Batch slices whose patch matrices, (Ho*Wo, KH*KW*C) per image, fit the budget."""
        kh, kw = self.kernel
        patch_bytes = ho * wo * kh * kw * images.shape[3] * images.itemsize
        return batch_chunks(images.shape[0], patch_bytes, self.chunk_bytes)

    def __repr__(self) -> str:
        kh, kw = self.kernel
        return (
            f"Conv2D({self.in_channels}->{self.out_channels}, {kh}x{kw}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.use_bias})"
        )
