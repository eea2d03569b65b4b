"""Block: a layer made of named child layers, itself a layer like any other."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from cnn.layers.base import Layer


class Block(Layer):
    """A layer whose work is done by children, kept in order by name.

    `params`, `grads` and `buffers` are the children's own under dotted keys
    ("conv1.W", "shortcut.bn.gamma") and share their arrays, so an optimiser
    that updates a network's params in place updates the children too. Only
    leaves hold arrays; a block holds layers.

    Subclasses call children as `child(x, training)` and `child.backprop(dout)`
    (so that observers see them), write forward and backward, and name the children that receive
    the block's own input in `input_layers`: setting the block's `input_grad`
    sets theirs.
    """

    def __init__(self, children: Mapping[str, Layer]) -> None:
        # Not Layer.__init__: params/grads/buffers are read from the children, never held.
        self.sublayers: dict[str, Layer] = dict(children)
        self.observers = []
        self._input_grad = True

    def children(self) -> Iterator[tuple[str, Layer]]:
        return iter(self.sublayers.items())

    def input_layers(self) -> list[Layer]:
        """The children that see the block's input; by default the first."""
        return list(self.sublayers.values())[:1]

    @property
    def input_grad(self) -> bool:
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value: bool) -> None:
        self._input_grad = value
        for layer in self.input_layers():
            layer.input_grad = value

    @property
    def params(self) -> dict[str, np.ndarray]:
        return dict(self.named_parameters())

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return dict(self.named_grads())

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return dict(self.named_buffers())

    def to(self, dtype: np.dtype | type) -> Block:
        for layer in self.sublayers.values():
            layer.to(dtype)
        return self
