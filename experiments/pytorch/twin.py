"""The same network in PyTorch, built by walking a cnn.Sequential's tree of modules.

Used only as a yardstick: the benchmark times it beside the NumPy network,
and optional tests compare outputs and gradients. PyTorch is an optional
extra (`pip install torch`), never a dependency of `cnn/`.

Each kind of layer has one converter in the table `_converters` builds; a block is
converted from its children (`children()`), so a new block needs one converter
here, for its own way of combining them, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from cnn import layers as L
from cnn.layers.base import Layer
from cnn.network import Sequential


def to_torch(net: Sequential, copy_weights: bool = True):
    """A torch.nn.Module with the same layers (and weights), taking NCHW input.

    Flatten first permutes to channels-last, so the dense layer sees features in
    the same (H, W, C) order as the NumPy network.
    """
    return _twin(net, copy_weights)


def _twin(layer: Layer, copy_weights: bool):
    """The converter of the nearest class in the layer's ancestry, applied to it."""
    table = _converters()
    kind = next((k for k in type(layer).__mro__ if k in table), None)
    if kind is None:
        raise NotImplementedError(f"no PyTorch twin for {layer!r}")
    return table[kind](layer, copy_weights)


@cache
def _converters() -> dict[type, Callable[[Any, bool], Any]]:
    import torch
    from torch import nn

    def tensor(array: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(array).copy())

    class ChannelsLastFlatten(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    class GlobalAvgPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Residual(nn.Module):
        """act2(main(x) + shortcut(x)); no shortcut at all for a plain block."""

        def __init__(self, block: L.ResidualBlock, copy_weights: bool) -> None:
            super().__init__()

            def path(names: list[str]):
                return nn.Sequential(*(_twin(block.sublayers[n], copy_weights) for n in names))

            self.main = path(block.main_names)
            self.shortcut = None if block.shortcut == "none" else path(block.shortcut_names)
            self.act = _twin(block.sublayers["act2"], copy_weights)

        def forward(self, x):
            h = self.main(x)
            return self.act(h if self.shortcut is None else h + self.shortcut(x))

    def weighted(module, layer: L.WeightedLayer, weight: np.ndarray, copy_weights: bool):
        if copy_weights:
            module.weight.data = tensor(weight)
            if layer.use_bias:
                module.bias.data = tensor(layer.params["b"])
        return module

    def conv(layer: L.Conv2D, copy_weights: bool):
        module = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                           layer.padding, bias=layer.use_bias)
        return weighted(module, layer, layer.params["W"].transpose(3, 2, 0, 1), copy_weights)

    def dense(layer: L.Dense, copy_weights: bool):
        module = nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias)
        return weighted(module, layer, layer.params["W"].T, copy_weights)

    def batch_norm(kind: type) -> Callable[[L.BatchNorm1D, bool], Any]:
        def convert(layer: L.BatchNorm1D, copy_weights: bool):
            module = kind(layer.num_features, eps=layer.eps, momentum=layer.momentum)
            if copy_weights:
                module.weight.data = tensor(layer.params["gamma"])
                module.bias.data = tensor(layer.params["beta"])
            return module
        return convert

    return {
        Sequential: lambda net, copy: nn.Sequential(*(_twin(child, copy)
                                                      for _, child in net.children())),
        L.ResidualBlock: Residual,
        L.Conv2D: conv,
        L.Dense: dense,
        L.BatchNorm2D: batch_norm(nn.BatchNorm2d),
        # Before BatchNorm2D in any ancestry walk: a fused layer's twin keeps its ReLU.
        L.BatchNormReLU2D: lambda layer, copy: nn.Sequential(
            batch_norm(nn.BatchNorm2d)(layer, copy), nn.ReLU()),
        L.BatchNorm1D: batch_norm(nn.BatchNorm1d),
        L.MaxPool2D: lambda layer, _: nn.MaxPool2d(layer.kernel, layer.stride),
        L.AvgPool2D: lambda layer, _: nn.AvgPool2d(layer.kernel, layer.stride),
        L.GlobalAvgPool: lambda layer, _: GlobalAvgPool(),
        L.ReLU: lambda layer, _: nn.ReLU(),
        L.LeakyReLU: lambda layer, _: nn.LeakyReLU(layer.alpha),
        L.Flatten: lambda layer, _: ChannelsLastFlatten(),
        L.Dropout: lambda layer, _: nn.Dropout(layer.p),
    }


def nhwc_to_nchw(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
