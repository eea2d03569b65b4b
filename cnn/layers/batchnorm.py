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
            mean, var = x2.mean(axis=0), x2.var(axis=0)
            m = x2.shape[0]
            unbiased = var * (m / max(m - 1, 1))
            for key, batch_value in (("running_mean", mean), ("running_var", unbiased)):
                running = self.buffers[key]
                running *= 1.0 - self.momentum
                running += self.momentum * batch_value
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)  # (C,)
        xhat = (x2 - mean) * inv_std  # (M, C)
        self._cache = (xhat, inv_std, training)
        return (xhat * self.params["gamma"] + self.params["beta"]).reshape(x.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xhat, inv_std, training = self._cache
        d2 = dout.reshape(-1, self.num_features)  # (M, C)
        self.grads["gamma"] = (d2 * xhat).sum(axis=0)
        self.grads["beta"] = d2.sum(axis=0)
        dxhat = d2 * self.params["gamma"]
        if not training:  # the statistics are constants
            return (dxhat * inv_std).reshape(dout.shape)
        # The batch mean and variance depend on every input, which adds two
        # terms: one removes the gradient's mean, one its projection on xhat.
        dx = inv_std * (
            dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)
        )
        return dx.reshape(dout.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, momentum={self.momentum})"


class BatchNorm2D(BatchNorm1D):
    """(N, H, W, C) -> (N, H, W, C), statistics per channel over N, H and W."""
