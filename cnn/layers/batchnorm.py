"""Batch normalisation for dense features and for channels-last images.

Channels are the last axis in both cases, so BatchNorm2D is BatchNorm1D
applied to the (N*H*W, C) view of the images: one implementation serves both.
"""

from __future__ import annotations

import numpy as np

from cnn.layers.base import Layer
from cnn.layers.channels import column_sums, per_channel
from cnn.parallel import over_batch


def check_batchnorm(momentum: float, eps: float) -> None:
    """ValueError unless 0 <= momentum <= 1 and eps > 0, finite: a negative eps takes the
    square root of a negative variance, a momentum above 1 overshoots the running
    statistics. Written as ranges, so that NaN is refused too."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch norm momentum must be in [0, 1], got {momentum}")
    if not 0.0 < eps < float("inf"):
        raise ValueError(f"batch norm eps must be > 0 and finite, got {eps}")


class BatchNorm1D(Layer):
    """(N, C) -> (N, C): y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Training uses the batch's mean and (biased) variance and updates the running
    estimates: running = (1 - momentum) * running + momentum * batch, with the
    unbiased variance, as in PyTorch. Evaluation uses the running estimates.
    Params: gamma, beta (C,). Buffers: running_mean, running_var (C,).
    The element-wise passes take the batch in chunks, on the threads of
    cnn/parallel.py's scope.
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
        check_batchnorm(momentum, eps)
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.params["gamma"] = np.ones(num_features, dtype=dtype)
        self.params["beta"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        xc, inv_std = self._centre(x, training)
        scale, shift = self.params["gamma"] * inv_std, self.params["beta"]
        out = np.empty_like(x)

        def normalise(rows: slice) -> None:
            per_channel(xc[rows], np.multiply, scale, out=out[rows])
            per_channel(out[rows], np.add, shift, out=out[rows])

        over_batch(normalise, x)
        return out

    def _centre(self, x: np.ndarray, training: bool) -> tuple[np.ndarray, np.ndarray]:
        """(x - mean, 1 / sqrt(var + eps)), the batch's statistics in training (which
        update the running ones) or the running ones; kept for backward."""
        c = self.num_features
        m = x.size // c
        # The per-channel sums run over the whole batch at once; the element-wise
        # passes between them go chunk by chunk.
        mean = column_sums(x.reshape(-1, c)) / m if training else self.buffers["running_mean"]
        xc = np.empty_like(x)  # x's shape
        over_batch(lambda rows: per_channel(x[rows], np.subtract, mean, out=xc[rows]),
                   x)
        if training:
            xc2 = xc.reshape(-1, c)  # (M, C)
            var = np.einsum("mc,mc->c", xc2, xc2) / m  # biased: the batch's own spread
            for key, batch_value in (
                ("running_mean", mean),
                ("running_var", var * m / max(m - 1, 1)),
            ):
                running = self.buffers[key]
                running *= 1.0 - self.momentum
                running += self.momentum * batch_value
        else:
            var = self.buffers["running_var"]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)  # (C,)
        # Backward needs xhat = xc * inv_std; keeping xc and inv_std saves a pass here.
        self._cache = (xc, inv_std, training)
        return xc, inv_std

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xc, inv_std, training = self._cache
        c = self.num_features
        d2 = dout.reshape(-1, c)  # (M, C)
        dbeta = column_sums(d2)
        dgamma = np.einsum("mc,mc->c", d2, xc.reshape(-1, c)) * inv_std  # sum of dout * xhat
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        scale = self.params["gamma"] * inv_std  # (C,)
        # In training the batch mean and variance depend on every input, which adds
        # two terms: one removes the gradient's mean (dbeta / M), the other its
        # projection on xhat (dgamma / M), where xhat = xc * inv_std.
        along_xhat, mean_term = self._input_grad_terms(dgamma, dbeta, d2.shape[0])
        dx = np.empty_like(dout)

        def input_grad(rows: slice) -> None:
            d = per_channel(dout[rows], np.multiply, scale, out=dx[rows])
            if training:
                d -= per_channel(xc[rows], np.multiply, along_xhat)
                per_channel(d, np.subtract, mean_term, out=d)

        over_batch(input_grad, dout)
        return dx

    def _input_grad_terms(self, dgamma: np.ndarray, dbeta: np.ndarray, m: int
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(C,) factors of the two training terms of dx: xc's and the constant's."""
        _, inv_std, _ = self._cache
        scale = self.params["gamma"] * inv_std
        return scale * inv_std * dgamma / m, scale * dbeta / m

    def channel_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """In evaluation mode, y = scale * x + shift with scale = gamma / sqrt(running_var +
        eps) and shift = beta - running_mean * scale, each (C,)."""
        inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)  # (C,)
        scale = (self.params["gamma"] * inv_std).astype(self.params["gamma"].dtype)  # (C,)
        return scale, self.params["beta"] - self.buffers["running_mean"] * scale  # (C,), (C,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features}, momentum={self.momentum})"


class BatchNorm2D(BatchNorm1D):
    """(N, H, W, C) -> (N, H, W, C), statistics per channel over N, H and W."""
