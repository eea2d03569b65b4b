"""Sequential: a stack of layers that is itself trained like one layer."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from cnn.layers.activations import softmax
from cnn.layers.base import Layer, WeightedLayer
from cnn.layers.block import Block


def _default_names(layers: Iterable[Layer]) -> list[str]:
    """conv1, relu1, pool1, conv2, ...: numbered per layer type, as people write them."""
    short = {
        "Conv2D": "conv",
        "MaxPool2D": "pool",
        "AvgPool2D": "avgpool",
        "Dense": "dense",
        "BatchNorm2D": "bn",
        "BatchNorm1D": "bn1d",
        "GlobalAvgPool": "gap",
        "ResidualBlock": "res",
    }
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        kind = short.get(type(layer).__name__, type(layer).__name__.lower())
        counts[kind] = counts.get(kind, 0) + 1
        names.append(f"{kind}{counts[kind]}")
    return names


class WeightsMismatchError(ValueError):
    """Saved weights do not fit this network."""


class Sequential:
    """Applies layers in order: (N, *input_shape) -> (N, K) logits for a classifier.

    `params` and `grads` are flat dicts keyed "layer.param" (e.g. "conv1.W")
    that share their arrays with the layers, so an optimiser that updates
    them in place updates the network. A block (a layer made of layers) is
    named like any layer ("res1", or a name the model gives, "stage2.block1"),
    and its own keys follow: "stage2.block1.conv1.W".
    """

    def __init__(
        self,
        layers: list[Layer],
        names: list[str | None] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.layers = list(layers)
        # A None among the names takes the default, so a model can name only its blocks.
        given = names or [None] * len(self.layers)
        if len(given) != len(self.layers):
            raise ValueError(f"{len(given)} names for {len(self.layers)} layers")
        self.names = [n or d for n, d in zip(given, _default_names(self.layers), strict=True)]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"layer names must be unique, got {self.names}")
        self.input_shape = input_shape
        self.training = True

    # -- modes ------------------------------------------------------------------------------
    def train(self) -> Sequential:
        self.training = True
        return self

    def eval(self) -> Sequential:
        self.training = False
        return self

    # -- passes -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool | None = None) -> np.ndarray:
        training = self.training if training is None else training
        for layer in self.layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Gradient of the loss for the input; fills every layer's grads.

        With input_grad=False (training) the first layer skips computing dx,
        which nothing uses, and None is returned.
        """
        first, *rest = self.layers
        for layer in reversed(rest):
            dout = layer.backward(dout)
        if input_grad:
            return first.backward(dout)
        if isinstance(first, WeightedLayer | Block):
            first.backward(dout, input_grad=False)
        elif first.params:
            first.backward(dout)
        return None

    __call__ = forward

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) in evaluation mode, batch by batch."""
        chunks = [
            softmax(self.forward(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(chunks)

    # -- parameters -------------------------------------------------------------------------
    def named_layers(self) -> Iterable[tuple[str, Layer]]:
        return zip(self.names, self.layers, strict=True)

    def named_leaves(self) -> Iterator[tuple[str, Layer]]:
        """Every layer, with the layers inside blocks in place of the blocks:
        ("conv1", Conv2D), ..., ("stage2.block1.conv1", Conv2D), ..."""
        for name, layer in self.named_layers():
            if isinstance(layer, Block):
                for inner, leaf in layer.named_leaves():
                    yield f"{name}.{inner}", leaf
            else:
                yield name, layer

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self.named_layers() for k, v in layer.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self.named_layers() for k, v in layer.grads.items()}

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": v for n, layer in self.named_layers() for k, v in layer.buffers.items()}

    def num_params(self) -> int:
        return sum(v.size for v in self.params.values())

    def to(self, dtype: np.dtype | type) -> Sequential:
        """Cast every layer's parameters and buffers (float32 by default, float64 for checks)."""
        for layer in self.layers:
            layer.to(dtype)
        return self

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    # -- weights on disk --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers, copied: everything needed to restore the network."""
        return {k: v.copy() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state: dict[str, np.ndarray], source: str = "state") -> None:
        """Copy arrays into the network; every key and shape must match exactly."""
        own = {**self.params, **self.buffers}
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or unexpected:
            raise WeightsMismatchError(
                f"{source} does not fit this network: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                # Names may hold dots themselves ("stage2.block1"): match the longest.
                layer = max((n for n in self.names if key.startswith(n + ".")), key=len)
                param = key[len(layer) + 1 :]
                raise WeightsMismatchError(
                    f"{source}: layer {layer!r} parameter {param!r} has shape {value.shape} "
                    f"in the file but {target.shape} in the network"
                )
        for key, target in own.items():
            target[...] = state[key]

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and buffers to an .npz file (no pickle)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | os.PathLike) -> None:
        """Read weights written by `save`; refuses pickled objects and wrong shapes."""
        with np.load(path, allow_pickle=False) as data:
            self.load_state_dict({k: data[k] for k in data.files}, source=str(path))

    # -- reading ----------------------------------------------------------------------------
    def summary(self, input_shape: tuple[int, ...] | None = None, print_fn=print) -> str:
        """Each layer's output shape and parameter count, found by one forward pass."""
        shape = input_shape or self.input_shape
        if shape is None:
            raise ValueError("summary needs an input_shape, e.g. (32, 32, 3)")
        x = np.zeros((1, *shape), dtype=self.dtype)
        rows = [("layer", "output shape", "params"), ("input", str(tuple(shape)), "")]
        for name, layer in self.named_layers():
            x = layer.forward(x, training=False)
            count = sum(v.size for v in layer.params.values())
            rows.append((f"{name} {layer!r}", str(x.shape[1:]), f"{count:,}"))
        rows.append(("total", "", f"{self.num_params():,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        text = "\n".join(
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows
        )
        print_fn(text)
        return text

    def __repr__(self) -> str:
        inner = ",\n".join(f"  {n}: {layer!r}" for n, layer in self.named_layers())
        return f"Sequential(\n{inner}\n)"
