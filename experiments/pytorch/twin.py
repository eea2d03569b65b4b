"""The same network in PyTorch, built layer by layer from a cnn.Sequential.

Used only as a yardstick: the benchmark times it beside the NumPy network,
and optional tests compare outputs and gradients. PyTorch is an optional
extra (`pip install torch`), never a dependency of `cnn/`.
"""

from __future__ import annotations

import numpy as np

from cnn import layers as L
from cnn.network import Sequential


def to_torch(net: Sequential, copy_weights: bool = True):
    """A torch.nn.Sequential with the same layers (and weights), taking NCHW input.

    Flatten first permutes to channels-last, so the dense layer sees features in
    the same (H, W, C) order as the NumPy network.
    """
    import torch
    from torch import nn

    class ChannelsLastFlatten(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    class GlobalAvgPool(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Residual(nn.Module):
        """act2(main(x) + shortcut(x)); no shortcut at all for a plain block."""

        def __init__(self, block: L.ResidualBlock) -> None:
            super().__init__()
            subs = block.sublayers
            self.main = nn.Sequential(*(twin(subs[n]) for n in block.main_names))
            self.shortcut = None if block.shortcut == "none" else \
                nn.Sequential(*(twin(subs[n]) for n in block.shortcut_names))  # empty: identity
            self.act = twin(subs["act2"])

        def forward(self, x):
            h = self.main(x)
            return self.act(h if self.shortcut is None else h + self.shortcut(x))

    def twin(layer: L.Layer):
        if isinstance(layer, L.ResidualBlock):
            return Residual(layer)
        if isinstance(layer, L.GlobalAvgPool):
            return GlobalAvgPool()
        if isinstance(layer, L.Conv2D):
            m = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel,
                layer.stride,
                layer.padding,
                bias=layer.use_bias,
            )
            if copy_weights:
                m.weight.data = torch.from_numpy(layer.params["W"].transpose(3, 2, 0, 1).copy())
        elif isinstance(layer, L.Dense):
            m = nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias)
            if copy_weights:
                m.weight.data = torch.from_numpy(layer.params["W"].T.copy())
        elif isinstance(layer, L.BatchNorm2D | L.BatchNorm1D):
            cls = nn.BatchNorm2d if isinstance(layer, L.BatchNorm2D) else nn.BatchNorm1d
            m = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum)
            if copy_weights:
                m.weight.data = torch.from_numpy(layer.params["gamma"].copy())
                m.bias.data = torch.from_numpy(layer.params["beta"].copy())
        elif isinstance(layer, L.MaxPool2D):
            m = nn.MaxPool2d(layer.kernel, layer.stride)
        elif isinstance(layer, L.AvgPool2D):
            m = nn.AvgPool2d(layer.kernel, layer.stride)
        elif isinstance(layer, L.ReLU):
            m = nn.ReLU()
        elif isinstance(layer, L.LeakyReLU):
            m = nn.LeakyReLU(layer.alpha)
        elif isinstance(layer, L.Flatten):
            m = ChannelsLastFlatten()
        elif isinstance(layer, L.Dropout):
            m = nn.Dropout(layer.p)
        else:
            raise NotImplementedError(f"no PyTorch twin for {layer!r}")
        if copy_weights and getattr(m, "bias", None) is not None and "b" in layer.params:
            m.bias.data = torch.from_numpy(layer.params["b"].copy())
        return m

    return nn.Sequential(*(twin(layer) for layer in net.layers))


def nhwc_to_nchw(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
