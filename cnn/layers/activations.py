"""Element-wise non-linearities and the stand-alone softmax."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnn.layers.base import Layer
from cnn.parallel import over_batch


class ReLU(Layer):
    """max(x, 0), any shape. Units whose input is negative pass no gradient ("dead").

    Works through the batch in chunks, on the threads of cnn/parallel.py's scope."""


    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._mask = np.empty(x.shape, dtype=bool)
        out = np.empty_like(x)

        def relu(rows: slice) -> None:
            np.greater(x[rows], 0, out=self._mask[rows])
            np.multiply(x[rows], self._mask[rows], out=out[rows])

        over_batch(relu, x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = np.empty_like(dout)
        over_batch(lambda rows: np.multiply(dout[rows], self._mask[rows], out=dx[rows]),
                   dout)
        return dx

    def in_place_activation(self) -> Callable[[np.ndarray], np.ndarray]:
        return lambda h: np.maximum(h, 0, out=h)


class LeakyReLU(Layer):
    """x for x > 0, alpha * x otherwise, any shape; never fully dead."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        return x * self._slope

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._slope

    def __repr__(self) -> str:
        return f"LeakyReLU({self.alpha})"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits; shifting by the row maximum prevents overflow."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Softmax(Layer):
    """(N, K) logits -> (N, K) probabilities. For training use SoftmaxCrossEntropy,
    which fuses this with the loss for a simpler, more stable gradient."""

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self._p = softmax(x)
        return self._p

    def backward(self, dout: np.ndarray) -> np.ndarray:
        p = self._p
        return p * (dout - (dout * p).sum(axis=1, keepdims=True))
