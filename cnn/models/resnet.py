"""CIFAR-style residual networks (He et al., 2016, section 4.2) and their plain twins.

    stem:    conv3x3(widths[0]) - BN - act                       (N, H, W, w0)
    stage s: n residual blocks of width widths[s]; stages after the first start
             with stride 2, so each halves the image      (N, H / 2^s, W / 2^s, ws)
    head:    global average pool - dropout (when > 0) - dense  (N, num_classes)

With three stages, depth = 6n + 2 (two convolutions a block, plus stem and
dense): 8, 14, 20, 32, 56, 110. Where the shape changes, the shortcut is a
strided 1x1 convolution with BN (the paper's option B; its CIFAR networks used
zero-padded identities, option A, which has no parameters).

`bn_momentum` is every batch norm's weight of the current batch in its running
statistics (0.1, PyTorch's default; a lower one averages over more batches).

`plain` is the same network without any shortcut, projections included: the
depth study's control. (Its weights match resnet's up to the first projection,
which plain does not draw.)
Layers are named "conv1", "bn1", "relu1" (stem), "stage2.block1", ...,
"gap1", "dropout1", "dense1".
"""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers import BatchNorm2D, Conv2D, Dense, GlobalAvgPool, Layer, ResidualBlock
from cnn.layers.residual import ACTIVATIONS, NORMS, make_activation
from cnn.models.registry import (
    KnobError,
    architecture,
    check_choice,
    check_dropout,
    check_widths,
    dropout_layers,
)


def residual_network(
    family: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    init: Initializer,
    rng: np.random.Generator,
    *,
    depth: int,
    widths: list[int],
    norm: str,
    activation: str,
    dropout: float,
    shortcut: bool,
    bn_momentum: float = 0.1,
) -> tuple[list[Layer], list[str | None]]:
    """The layers of `resnet` (shortcut=True) or `plain` (False), and the blocks' names;
    check_residual has checked the knobs."""
    widths = list(widths)
    n = blocks_per_stage(depth, len(widths))
    batch = norm == "batch"
    c = input_shape[2]
    layers: list[Layer] = [
        Conv2D(c, widths[0], 3, padding=1, bias=not batch, init=init, rng=rng),
        *([BatchNorm2D(widths[0])] if batch else []),
        make_activation(activation),
    ]
    names: list[str | None] = [None] * len(layers)
    c = widths[0]
    for s, width in enumerate(widths, start=1):
        for b in range(1, n + 1):
            stride = 2 if s > 1 and b == 1 else 1
            layers.append(ResidualBlock(c, width, stride, norm=norm, activation=activation,
                                        shortcut=shortcut, init=init, rng=rng))
            names.append(f"stage{s}.block{b}")
            c = width
    head = [GlobalAvgPool(), *dropout_layers(dropout, rng),
            Dense(c, num_classes, init=init, rng=rng)]
    _set_bn_momentum(layers, bn_momentum)
    return [*layers, *head], [*names, *[None] * len(head)]


PER_BLOCK = 2  # convolutions in a basic block


def blocks_per_stage(depth: int, stages: int) -> int:
    """n of depth = 2 * stages * n + 2, or 0 when depth is not of that form."""
    n, rest = divmod(depth - 2, PER_BLOCK * stages) if stages else (0, 1)
    return n if n >= 1 and not rest else 0


def check_residual(family: str):
    """The rules of `resnet` or `plain` about their knobs, checked before anything is built."""

    def check(input_shape: tuple[int, ...], *, depth: int, widths: list[int], norm: str,
              activation: str, dropout: float, bn_momentum: float) -> None:
        check_widths(widths, family)
        stages = len(widths)
        if not blocks_per_stage(depth, stages):
            valid = ", ".join(str(PER_BLOCK * stages * k + 2) for k in range(1, 6))
            raise KnobError("depth", f"{family} depth must be {PER_BLOCK * stages}n+2 with "
                                     f"{stages} stages ({valid}, ...), got {depth}")
        check_choice("norm", norm, NORMS, family)
        check_choice("activation", activation, ACTIVATIONS, family)
        check_dropout(dropout, family)
        if not 0.0 < bn_momentum <= 1.0:
            raise KnobError("bn_momentum",
                            f"{family} bn_momentum must be in (0, 1], got {bn_momentum}")

    return check


def _set_bn_momentum(layers: list[Layer], momentum: float) -> None:
    """Give every batch norm, inside the blocks too, the running statistics' momentum."""
    for layer in layers:
        for _, module in layer.named_modules():
            if isinstance(module, BatchNorm2D):
                module.momentum = momentum


@architecture("resnet", check=check_residual("resnet"))
def resnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    init: Initializer,
    rng: np.random.Generator,
    *,
    depth: int = 20,
    widths: list[int] = [16, 32, 64],  # noqa: B006 (read, never changed)
    norm: str = "batch",
    activation: str = "relu",
    dropout: float = 0.0,
    bn_momentum: float = 0.1,
) -> tuple[list[Layer], list[str | None]]:
    """(N, H, W, C) -> (N, num_classes): a residual network of `depth` layers (6n+2)."""
    return residual_network("resnet", input_shape, num_classes, init, rng, depth=depth,
                            widths=widths, norm=norm, activation=activation, dropout=dropout,
                            shortcut=True, bn_momentum=bn_momentum)


@architecture("plain", check=check_residual("plain"))
def plain(
    input_shape: tuple[int, int, int],
    num_classes: int,
    init: Initializer,
    rng: np.random.Generator,
    *,
    depth: int = 20,
    widths: list[int] = [16, 32, 64],  # noqa: B006 (read, never changed)
    norm: str = "batch",
    activation: str = "relu",
    dropout: float = 0.0,
    bn_momentum: float = 0.1,
) -> tuple[list[Layer], list[str | None]]:
    """(N, H, W, C) -> (N, num_classes): `resnet` with no shortcuts."""
    return residual_network("plain", input_shape, num_classes, init, rng, depth=depth,
                            widths=widths, norm=norm, activation=activation, dropout=dropout,
                            shortcut=False, bn_momentum=bn_momentum)
