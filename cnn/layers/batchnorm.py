"""Batch normalisation for dense features and for channels-last images.

Channels are the last axis in both cases, so BatchNorm2D is BatchNorm1D
applied to the (N*H*W, C) view of the images: one implementation serves both.
"""

from __future__ import annotations

import numpy as np

from cnn.layers.base import Layer


class BatchNorm1D(Layer):
    """(N, C) -> (N, C): y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Training uses the batch's mean and (biased) variance and updates the running
    estimates: running = (1 - momentum) * running + momentum * batch, with the
    unbiased variance, as in PyTorch. Evaluation uses the running estimates.
    Params: gamma, beta (C,). Buffers: running_mean, running_var (C,).
    """

    def __init__(
        self,
        num_features: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
        *,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x2 = x.reshape(-1, self.num_features)  # (M, C)
        if training:
            m = x2.shape[0]
            mean = x2.mean(axis=0)
            xc = x2 - mean  # (M, C)
            var = np.einsum("mc,mc->c", xc, xc) / m  # biased: the batch's own spread
            for key, batch_value in (
                ("running_mean", mean),
                ("running_var", var * m / max(m - 1, 1)),
            ):
                running = self.buffers[key]
                running *= 1.0 - self.momentum
                running += self.momentum * batch_value
        else:
            xc, var = x2 - self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
        xhat = xc
        xhat *= inv_std  # (M, C), in place: xc is a temporary
        self._cache = (xhat, inv_std, training)
        out = xhat * self.params["gamma"]
        out += self.params["beta"]
        return out.reshape(x.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xhat, inv_std, training = self._cache
        d2 = dout.reshape(-1, self.num_features)  # (M, C)
        dbeta = d2.sum(axis=0)
        dgamma = np.einsum("mc,mc->c", d2, xhat)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        scale = self.params["gamma"] * inv_std  # (C,)
        if not training:  # the statistics are constants
            return (d2 * scale).reshape(dout.shape)
        # The batch mean and variance depend on every input, which adds two
        # terms: one removes the gradient's mean (dbeta / M), the other its
        # projection on xhat (dgamma / M).
        m = d2.shape[0]
        dx = d2 - dbeta / m
        dx -= xhat * (dgamma / m)
        dx *= scale
        return dx.reshape(dout.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, momentum={self.momentum})"


class BatchNorm2D(BatchNorm1D):
    """(N, H, W, C) -> (N, H, W, C), statistics per channel over N, H and W."""
