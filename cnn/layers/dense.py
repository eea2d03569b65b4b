"""Fully connected layer and the reshape that feeds it."""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers.base import Layer, WeightedLayer


class Dense(WeightedLayer):
    """Affine map: (N, D_in) -> (N, D_out), y = x @ W + b.

    Params: W (D_in, D_out) and, with bias, b (D_out,).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: str | Initializer = "he",
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.use_bias = in_features, out_features, bias
        self.params["W"] = np.zeros((in_features, out_features), dtype=dtype)
        if bias:
            self.params["b"] = np.zeros(out_features, dtype=dtype)
        self.reset_parameters(init, rng or np.random.default_rng(0))

    @property
    def fans(self) -> tuple[int, int]:
        return self.in_features, self.out_features

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._x = x  # (N, D_in)
        out = x @ self.params["W"]  # (N, D_out)
        if self.use_bias:
            out += self.params["b"]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        self.grads["W"] = self._x.T @ dout  # (D_in, D_out)
        if self.use_bias:
            self.grads["b"] = dout.sum(axis=0)  # (D_out,)
        return dout @ self.params["W"].T if self.input_grad else None  # (N, D_in)

    def __repr__(self) -> str:
        return f"Dense({self.in_features}->{self.out_features}, bias={self.use_bias})"


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), in C order (H, W, C for images)."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout.reshape(self._shape)
