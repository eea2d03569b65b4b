"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from cnn.layers.base import Layer


class Dropout(Layer):
    """Zeroes each unit with probability p while training, any shape.

    Survivors are scaled by 1 / (1 - p) during training, so evaluation is the
    identity and needs no rescaling. The mask is drawn from the layer's own
    seeded generator.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng or np.random.default_rng(0)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.p == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return x * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._mask is None else dout * self._mask

    def generators(self) -> dict[str, np.random.Generator]:
        return {"rng": self.rng}

    def __repr__(self) -> str:
        return f"Dropout({self.p})"
