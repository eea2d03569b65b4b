"""Layers fused for speed: a network-level choice (cnn.models.build_model(fuse=True)) that
gives the same numbers as the layers it replaces, within rounding, with fewer passes over
memory. The layers it replaces stay usable alone.

BatchNormReLU2D is BatchNorm2D followed by ReLU. Apart, batch norm writes its output,
ReLU reads it back to write its own and a mask, and backward writes ReLU's masked
gradient whole for batch norm to read again for each of its sums. Fused, each chunk of
the batch is normalised, scaled, shifted and clipped while in cache; backward masks the
gradient a chunk at a time and takes that chunk's sums while it is in cache, into the
array that then becomes the input gradient in place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnn.layers.activations import ReLU
from cnn.layers.base import Layer
from cnn.layers.batchnorm import BatchNorm2D
from cnn.layers.channels import column_sums, per_channel
from cnn.parallel import ROW_CHUNK_BYTES, batch_chunks, map_chunks, over_batch


def _row_chunks(x: np.ndarray) -> list[slice]:
    """The chunks cnn.parallel.over_batch cuts x into; they depend on x's shape alone."""
    n = x.shape[0]
    return batch_chunks(n, x.nbytes // max(n, 1), ROW_CHUNK_BYTES)


class BatchNormReLU2D(BatchNorm2D):
    """relu(batchnorm(x)) for (N, H, W, C): BatchNorm2D's parameters, buffers and
    statistics, and ReLU's mask, in one layer.

    Its params and buffers have BatchNorm2D's keys, so a network fused or not holds the
    same state (a checkpoint of one loads into the other). In evaluation mode it is
    relu(scale * x + shift) (channel_affine, then in_place_activation), which a
    convolution before it folds in whole (Conv2D.fold)."""

    @classmethod
    def sharing(cls, norm: BatchNorm2D) -> BatchNormReLU2D:
        """The fused layer of `norm` and a ReLU after it, holding `norm`'s own arrays."""
        fused = cls(norm.num_features, norm.momentum, norm.eps)
        fused.params, fused.buffers = norm.params, norm.buffers
        return fused

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        xc, inv_std = self._centre(x, training)
        scale, shift = self.params["gamma"] * inv_std, self.params["beta"]
        out = np.empty_like(x)
        self._mask = np.empty(x.shape, dtype=bool)

        def normalise_and_clip(rows: slice) -> None:
            o = per_channel(xc[rows], np.multiply, scale, out=out[rows])
            per_channel(o, np.add, shift, out=o)
            np.greater(o, 0, out=self._mask[rows])
            np.maximum(o, 0, out=o)

        over_batch(normalise_and_clip, x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xc, inv_std, training = self._cache
        mask, c = self._mask, self.num_features
        chunks = _row_chunks(dout)
        dx = np.empty_like(dout)  # ReLU's gradient first, then batch norm's in its place

        def sums(rows: slice) -> tuple[np.ndarray, np.ndarray]:
            d = np.multiply(dout[rows], mask[rows], out=dx[rows]).reshape(-1, c)
            return column_sums(d), np.einsum("mc,mc->c", d, xc[rows].reshape(-1, c))

        # Partial sums added in chunk order: the same for any number of threads.
        partial = map_chunks(sums, chunks)
        dbeta = np.sum([p[0] for p in partial], axis=0)
        dgamma = np.sum([p[1] for p in partial], axis=0) * inv_std  # sum of d * xhat
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        scale = self.params["gamma"] * inv_std  # (C,)
        along_xhat, mean_term = self._input_grad_terms(dgamma, dbeta, dout.size // c)

        def input_grad(rows: slice) -> None:
            d = per_channel(dx[rows], np.multiply, scale, out=dx[rows])
            if training:
                d -= per_channel(xc[rows], np.multiply, along_xhat)
                per_channel(d, np.subtract, mean_term, out=d)

        map_chunks(input_grad, chunks)
        return dx

    def in_place_activation(self) -> Callable[[np.ndarray], np.ndarray]:
        """ReLU's, applied after channel_affine's map."""
        return ReLU().in_place_activation()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, momentum={self.momentum})"


def fuse_layers(layers: list[Layer], names: list[str | None]) -> tuple[list[Layer],
                                                                       list[str | None]]:
    """`layers` with every BatchNorm2D followed by a ReLU replaced by one BatchNormReLU2D
    holding the batch norm's arrays (and its name), and the names that remain; a layer
    inside a block is left as it is."""
    fused: list[Layer] = []
    kept: list[str | None] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        after = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is BatchNorm2D and type(after) is ReLU:
            fused.append(BatchNormReLU2D.sharing(layer))
            kept.append(names[i])
            i += 2
            continue
        fused.append(layer)
        kept.append(names[i])
        i += 1
    return fused, kept
