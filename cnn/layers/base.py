"""The contract every layer follows.

A layer maps a batch forward and a gradient backward:

    y = layer.forward(x, training)      # caches what backward needs
    dx = layer.backward(dy)             # also fills layer.grads

`params` holds the trainable arrays, `grads` their gradients under the same
keys, and `buffers` any state that is not trained (batch-norm running
statistics). Layers never change their own parameters: optimisers do, in
place, so the arrays in `params` stay the same objects for a layer's life.
"""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer, get_initializer


class Layer:
    """Base class: no parameters, no state. Subclasses override forward/backward."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to(self, dtype: np.dtype | type) -> Layer:
        """Cast parameters and buffers to `dtype` (e.g. float64 for gradient checks)."""
        for store in (self.params, self.buffers):
            for key, value in store.items():
                store[key] = value.astype(dtype)
        self.grads = {}
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WeightedLayer(Layer):
    """A layer with a weight `W` drawn by an initialiser and an optional bias `b`
    (zero unless the initialiser has a `bias` draw of its own).

    Its backward takes `input_grad=False` to fill `grads` without computing
    dx: the first layer of a network has nobody upstream to pass dx to.
    """

    use_bias: bool

    @property
    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of `W`, which set the scale of most initialisers."""
        raise NotImplementedError

    def reset_parameters(self, init: str | Initializer, rng: np.random.Generator) -> None:
        draw = get_initializer(init) if isinstance(init, str) else init
        w = self.params["W"]
        w[...] = draw(w.shape, *self.fans, rng)
        if self.use_bias:
            b = self.params["b"]
            draw_bias = getattr(draw, "bias", None)
            b[...] = draw_bias(b.shape, *self.fans, rng) if draw_bias else 0.0
