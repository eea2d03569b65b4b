"""The first two families: the small seed network and a VGG-style stack."""

from __future__ import annotations

import numpy as np

from cnn.initializers import Initializer
from cnn.layers import BatchNorm2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from cnn.layers.residual import NORMS
from cnn.models.registry import (
    architecture,
    check_choice,
    check_dropout,
    check_widths,
    dropout_layers,
)


@architecture("seed")
def seed_cnn(
    input_shape: tuple[int, int, int], num_classes: int, init: Initializer, rng: np.random.Generator
) -> list[Layer]:
    """The classic small network: conv3x3(16)-ReLU-maxpool2, conv3x3(32)-ReLU-maxpool2, dense.

    (N, H, W, C) -> (N, num_classes) logits; the softmax lives in the loss.
    """
    h, w, c = input_shape
    return [
        Conv2D(c, 16, 3, padding=1, init=init, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1, init=init, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense((h // 4) * (w // 4) * 32, num_classes, init=init, rng=rng),
    ]


def check_vgg(input_shape: tuple[int, ...], *, widths: list[int], norm: str,
              dropout: float) -> None:
    """vgg's rules, checked before anything is built (KnobError names the knob)."""
    if widths:  # none: the classifier alone
        check_widths(widths, "vgg")
    check_choice("norm", norm, NORMS, "vgg")
    check_dropout(dropout, "vgg")


@architecture("vgg", check=check_vgg)
def vgg_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    init: Initializer,
    rng: np.random.Generator,
    *,
    widths: list[int] = [32, 64, 128],  # noqa: B006 (read, never changed)
    norm: str = "batch",
    dropout: float = 0.0,
) -> list[Layer]:
    """VGG stages, one per width, of two conv3x3-BatchNorm-ReLU blocks, each stage then
    maxpool2; then flatten, dropout (when > 0) and the dense classifier.

    (N, H, W, C) -> (N, num_classes). Convolutions before batch norm carry no
    bias (the norm's beta would cancel it); with norm="none" they do.
    """
    batch = norm == "batch"  # check_vgg has checked the knobs
    h, w, c = input_shape
    layers: list[Layer] = []
    for width in widths:
        for _ in range(2):
            layers.append(Conv2D(c, width, 3, padding=1, bias=not batch, init=init, rng=rng))
            layers += [BatchNorm2D(width)] if batch else []
            layers.append(ReLU())
            c = width
        layers.append(MaxPool2D(2))
        h, w = h // 2, w // 2
    return [*layers, Flatten(), *dropout_layers(dropout, rng),
            Dense(h * w * c, num_classes, init=init, rng=rng)]
