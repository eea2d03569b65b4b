"""Block: a layer made of named sub-layers, held by Sequential like any other layer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cnn.layers.base import Layer


class Block(Layer):
    """A layer whose work is done by sub-layers, kept in `self.sublayers` by name.

    `params`, `grads` and `buffers` are the sub-layers' own under dotted keys
    ("conv1.W", "shortcut.bn.gamma") and share their arrays, so an optimiser
    that updates a network's params in place updates the sub-layers too.
    Subclasses fill `sublayers` and write forward and backward; like a
    WeightedLayer, backward takes `input_grad=False` for when the block is a
    network's first layer.
    """

    def __init__(self, sublayers: dict[str, Layer]) -> None:
        # Layer.__init__ would assign params/grads/buffers, which here are read from
        # the sub-layers instead: a copy of its own could go stale after `to`.
        self.sublayers = sublayers

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def named_leaves(self) -> Iterator[tuple[str, Layer]]:
        """Every layer inside that is not itself a block, with its dotted name."""
        for name, layer in self.sublayers.items():
            if isinstance(layer, Block):
                for inner, leaf in layer.named_leaves():
                    yield f"{name}.{inner}", leaf
            else:
                yield name, layer

    def _gather(self, store: str) -> dict[str, np.ndarray]:
        return {
            f"{name}.{key}": value
            for name, leaf in self.named_leaves()
            for key, value in getattr(leaf, store).items()
        }

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self._gather("params")

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return self._gather("grads")

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return self._gather("buffers")

    def to(self, dtype: np.dtype | type) -> Block:
        for layer in self.sublayers.values():
            layer.to(dtype)
        return self
