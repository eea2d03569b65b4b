"""The basic residual block of He et al. (2016), and the same block without its shortcut."""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers.activations import LeakyReLU, ReLU
from cnn.layers.base import Layer, infer_in_order
from cnn.layers.batchnorm import BatchNorm2D
from cnn.layers.block import Block
from cnn.layers.conv import Conv2D

NORMS = ("batch", "none")
ACTIVATIONS = ("relu", "leaky_relu")


def make_activation(name: str) -> Layer:
    """"relu" -> ReLU(), "leaky_relu" -> LeakyReLU(0.01) (PyTorch's default slope)."""
    if name == "relu":
        return ReLU()
    if name == "leaky_relu":
        return LeakyReLU(0.01)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ResidualBlock(Block):
    """act(main(x) + shortcut(x)) for channels-last images.

    Input (N, H, W, C_in) -> output (N, Ho, Wo, C_out), Ho = ceil(H / stride) (likewise Wo).

        main:     conv1 (3x3, stride) - bn1 - act1 - conv2 (3x3) - bn2
        shortcut: identity when the shape is kept (stride 1, C_in == C_out), else
                  shortcut.conv (1x1, stride) - shortcut.bn, a projection to the new shape
        then act2 of the sum.

    norm="none" leaves the batch norms out and gives the convolutions biases
    (with batch norm they have none: its beta would cancel them).
    shortcut=False drops the shortcut, projection included: a "plain" block,
    otherwise the same, for comparing networks that differ in the shortcut alone.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        norm: str = "batch",
        activation: str = "relu",
        shortcut: bool = True,
        init: str | Initializer = "he",
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        rng = rng or np.random.default_rng(0)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.norm, self.activation = norm, activation
        batch = norm == "batch"

        def conv(c_in: int, kernel: int, stride: int) -> Conv2D:
            return Conv2D(c_in, out_channels, kernel, stride, padding=kernel // 2, bias=not batch,
                          init=init, rng=rng, dtype=dtype)

        def bn(name: str) -> dict[str, Layer]:
            return {name: BatchNorm2D(out_channels, dtype=dtype)} if batch else {}

        main = {"conv1": conv(in_channels, 3, stride), **bn("bn1"),
                "act1": make_activation(activation),
                "conv2": conv(out_channels, 3, 1), **bn("bn2")}
        if not shortcut:
            self.shortcut = "none"
            side: dict[str, Layer] = {}
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = "identity"
            side = {}
        else:
            self.shortcut = "projection"
            side = {"shortcut.conv": conv(in_channels, 1, stride), **bn("shortcut.bn")}
        super().__init__({**main, **side, "act2": make_activation(activation)})
        self.main_names, self.shortcut_names = list(main), list(side)  # in forward order

    def input_layers(self) -> list[Layer]:
        """conv1, and a projection's convolution: both see the block's input."""
        return [self.sublayers[names[0]] for names in (self.main_names, self.shortcut_names)
                if names]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        h = self._forward_path(self.main_names, x, training)  # (N, Ho, Wo, C_out)
        if self.shortcut != "none":
            # h is the last layer's fresh output, cached by nobody: add in place.
            h += self._forward_path(self.shortcut_names, x, training)  # (N, Ho, Wo, C_out)
        return self.sublayers["act2"](h, training)  # (N, Ho, Wo, C_out)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        d = self.sublayers["act2"].backprop(dout)  # (N, Ho, Wo, C_out), reaches both paths
        dx = self._backward_path(self.main_names, d)  # (N, H, W, C_in), None if not input_grad
        if self.shortcut == "none":
            return dx
        # Run even without input_grad: a projection still needs its weight gradients.
        dside = self._backward_path(self.shortcut_names, d)  # identity: d itself
        if not self.input_grad:
            return None
        dx += dside  # dx is conv1's fresh array; d may be dside, so not the other way
        return dx

    def infer(self, x: np.ndarray) -> np.ndarray:
        """act2(main(x) + shortcut(x)), each path folded (a convolution with its batch norm)."""
        h = infer_in_order([self.sublayers[name] for name in self.main_names], x)
        if self.shortcut != "none":
            h += infer_in_order([self.sublayers[name] for name in self.shortcut_names], x)
        act = self.sublayers["act2"]
        activation = act.in_place_activation()
        return activation(h) if activation else act.infer(h)  # (N, Ho, Wo, C_out)

    def _forward_path(self, names: list[str], x: np.ndarray, training: bool) -> np.ndarray:
        for name in names:
            x = self.sublayers[name](x, training)
        return x

    def _backward_path(self, names: list[str], d: np.ndarray) -> np.ndarray | None:
        for name in reversed(names):
            d = self.sublayers[name].backprop(d)
        return d

    def __repr__(self) -> str:
        return (
            f"ResidualBlock({self.in_channels}->{self.out_channels}, stride={self.stride}, "
            f"shortcut={self.shortcut}, norm={self.norm}, activation={self.activation})"
        )
