"""`custom`: a network written as a list of layer specs, as a config file would hold it.

    - {type: conv, out: 32, kernel: 3, stride: 1, padding: 1, bias: true}
    - {type: batchnorm}
    - {type: relu}
    - {type: residual, out: 64, stride: 2}
    - {type: global_avgpool}
    - {type: dense, out: 128}

Input channels and dense input sizes are not written: they follow from the
data's shape, propagated layer by layer. A dense layer on images flattens
them first (H, W, C order), with a Flatten layer of its own. The classifier,
a dense layer to num_classes, is appended unless the list already ends with
one, so a list of features alone is a whole network. SPECS gives every type's
keys and defaults; conv pads by kernel // 2 unless told ("same" for odd
kernels), pools move by their size, residual keeps the channels unless given
`out`. Batch norm after a dense layer (flat input) is BatchNorm1D.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

import numpy as np

from cnn.initializers import Initializer
from cnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    ResidualBlock,
)
from cnn.layers.batchnorm import check_batchnorm
from cnn.layers.im2col import output_size
from cnn.layers.residual import ACTIVATIONS, NORMS
from cnn.models.memory import Footprint
from cnn.models.registry import KnobError, architecture, check_choice, fits_type

REQUIRED = "required"  # a key's default when it must be given

# type -> {key: (its type, default)}; None defaults are worked out from other keys.
SPECS: dict[str, dict[str, tuple[type, Any]]] = {
    "conv": {"out": (int, REQUIRED), "kernel": (int, 3), "stride": (int, 1),
             "padding": (int, None), "bias": (bool, True)},
    "batchnorm": {"momentum": (float, 0.1), "eps": (float, 1e-5)},
    "relu": {},
    "leaky_relu": {"slope": (float, 0.01)},
    "maxpool": {"size": (int, 2), "stride": (int, None)},
    "avgpool": {"size": (int, 2), "stride": (int, None)},
    "global_avgpool": {},
    "dropout": {"p": (float, 0.5)},
    "flatten": {},
    "dense": {"out": (int, REQUIRED), "bias": (bool, True)},
    "residual": {"out": (int, None), "stride": (int, 1), "norm": (str, "batch"),
                 "activation": (str, "relu"), "shortcut": (bool, True)},
}
_IMAGES_ONLY = {"conv", "residual", "maxpool", "avgpool", "global_avgpool"}

Shape = tuple[int, ...]


def read_spec(index: int, spec: Any) -> tuple[str, dict[str, Any]]:
    """(type, every key's value, defaults filled in); ValueError naming the index and key."""
    where = f"custom layers[{index}]"
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping such as {{type: relu}}, got {spec!r}")
    kind = spec.get("type")
    if kind is None:
        raise ValueError(f"{where}: no 'type' key in {dict(spec)}; types: {', '.join(SPECS)}")
    if kind not in SPECS:
        raise ValueError(f"{where}: unknown type {kind!r}; allowed: {', '.join(SPECS)}")
    allowed = SPECS[kind]
    for key in spec:
        if key != "type" and key not in allowed:
            raise ValueError(f"{where} ({kind}): unknown key {key!r}; "
                             f"allowed: {', '.join(['type', *allowed])}")
    options = {}
    for key, (kind_of, default) in allowed.items():
        value = spec.get(key, default)
        if value is REQUIRED:
            raise ValueError(f"{where} ({kind}): missing key {key!r}")
        if value is not None and not fits_type(value, kind_of):
            raise ValueError(f"{where} ({kind}): {key} must be {kind_of.__name__}, got {value!r}")
        if kind_of is int and value is not None and value < (0 if key == "padding" else 1):
            raise ValueError(f"{where} ({kind}): {key} must be at least "
                             f"{0 if key == 'padding' else 1}, got {value}")
        options[key] = value
    return kind, options


def _pooled(shape: Shape, size: int, stride: int, padding: int = 0) -> tuple[int, int]:
    h, w, _ = shape
    return output_size(h, size, stride, padding), output_size(w, size, stride, padding)


def _padding(o: dict[str, Any]) -> int:
    return o["kernel"] // 2 if o["padding"] is None else o["padding"]


def output_shape(kind: str, o: dict[str, Any], shape: Shape) -> Shape:
    """The output shape of one spec's layers on input `shape`; ValueError if it does not
    fit (a window larger than the image), or a value its layer refuses."""
    if kind == "conv":
        return (*_pooled(shape, o["kernel"], o["stride"], _padding(o)), o["out"])
    if kind == "residual":
        check_choice("norm", o["norm"], NORMS)
        check_choice("activation", o["activation"], ACTIVATIONS)
        s = o["stride"]
        return (-(-shape[0] // s), -(-shape[1] // s), o["out"] or shape[2])
    if kind in ("maxpool", "avgpool"):
        return (*_pooled(shape, o["size"], o["stride"] or o["size"]), shape[2])
    if kind == "global_avgpool":
        return (shape[2],)
    if kind == "flatten":
        return (prod(shape),)
    if kind == "dense":
        return (o["out"],)
    if kind == "dropout" and not 0.0 <= o["p"] < 1.0:  # Dropout's own rule
        raise ValueError(f"dropout probability must be in [0, 1), got {o['p']}")
    if kind == "batchnorm":
        check_batchnorm(o["momentum"], o["eps"])
    return shape


def build_layer(
    kind: str, o: dict[str, Any], shape: Shape, init: Initializer, rng: np.random.Generator
) -> tuple[list[Layer], Shape]:
    """The layers for one spec (a dense on images gets its Flatten) and their output shape."""
    out_shape = output_shape(kind, o, shape)
    if kind == "conv":
        return [Conv2D(shape[2], o["out"], o["kernel"], o["stride"], _padding(o), o["bias"],
                       init=init, rng=rng)], out_shape
    if kind == "residual":
        return [ResidualBlock(shape[2], out_shape[2], o["stride"], norm=o["norm"],
                              activation=o["activation"], shortcut=o["shortcut"], init=init,
                              rng=rng)], out_shape
    if kind in ("maxpool", "avgpool"):
        pool = (MaxPool2D if kind == "maxpool" else AvgPool2D)(o["size"], o["stride"] or o["size"])
        return [pool], out_shape
    if kind == "global_avgpool":
        return [GlobalAvgPool()], out_shape
    if kind == "flatten":
        return [Flatten()], out_shape
    if kind == "dense":
        flatten: list[Layer] = [Flatten()] if len(shape) > 1 else []
        return [*flatten, Dense(prod(shape), o["out"], o["bias"], init=init, rng=rng)], out_shape
    if kind == "batchnorm":
        norm = BatchNorm2D if len(shape) == 3 else BatchNorm1D
        return [norm(shape[-1], o["momentum"], o["eps"])], shape
    if kind == "relu":
        return [ReLU()], shape
    if kind == "leaky_relu":
        return [LeakyReLU(o["slope"])], shape
    # dropout: its own generator, spawned so that the weights' draws stay as they are
    return [Dropout(o["p"], rng=rng.spawn(1)[0])], shape


def check_custom(input_shape: tuple[int, ...], *, layers: list[dict]) -> None:
    """Every spec read and its shape followed through the list, building nothing; a
    mistake is KnobError("layers") naming the spec's index."""
    shape: Shape = tuple(input_shape)
    for index, spec in enumerate(layers):
        try:
            kind, options = read_spec(index, spec)
        except ValueError as e:
            raise KnobError("layers", str(e)) from e
        where = f"custom layers[{index}] ({kind})"
        if kind in _IMAGES_ONLY and len(shape) != 3:
            raise KnobError("layers", f"{where} needs images (H, W, C), but its input is "
                                      f"flat: {shape}")
        try:
            out_shape = output_shape(kind, options, shape)
        except ValueError as e:  # e.g. an unknown norm or a dropout p of 1
            raise KnobError("layers", f"{where}: {e}") from e
        if min(out_shape) < 1:
            raise KnobError("layers", f"{where}: its input {shape} is too small "
                                      f"(output {out_shape})")
        shape = out_shape


def _layer_cost(kind: str, o: dict[str, Any], shape: Shape, out: Shape) -> tuple[int, int]:
    """(parameters, values kept per image) of one spec's layers, from its shapes alone."""
    n_in, n_out = prod(shape), prod(out)
    if kind == "conv":  # the padded input and im2col's columns are held as well
        k, c, p = o["kernel"], shape[2], _padding(o)
        padded = (shape[0] + 2 * p) * (shape[1] + 2 * p) * c
        return k * k * c * o["out"] + o["out"], padded + out[0] * out[1] * k * k * c + n_out
    if kind == "residual":  # two 3x3 convolutions, a 1x1 projection, their norms
        c_in, c_out, pixels = shape[2], out[2], out[0] * out[1]
        params = 9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out + 6 * c_out
        return params, pixels * 9 * (c_in + c_out) + 8 * n_out + n_in
    if kind == "dense":
        return n_in * o["out"] + o["out"], n_out
    if kind == "batchnorm":
        return 4 * shape[-1], 2 * n_out
    return 0, n_out


def custom_footprint(input_shape: tuple[int, ...], *, layers: list[dict]) -> Footprint:
    """The memory of the layers check_custom has passed, allocating nothing; the
    classifier is counted for 10 classes unless the list ends with a dense layer."""
    shape: Shape = tuple(input_shape)
    params = activations = 0
    largest, most = "the input", prod(shape)
    specs = [read_spec(index, spec) for index, spec in enumerate(layers)]
    if not specs or specs[-1][0] != "dense":
        specs.append(("dense", {"out": 10, "bias": True}))
    for index, (kind, options) in enumerate(specs):
        out_shape = output_shape(kind, options, shape)
        p, a = _layer_cost(kind, options, shape, out_shape)
        params, activations = params + p, activations + a
        if 2 * p + a > most:
            where = "the classifier" if index == len(layers) else f"custom layers[{index}]"
            largest, most = f"{where} ({kind}, {p:,} parameters)", 2 * p + a
        shape = out_shape
    return Footprint(params, activations, "layers", largest)


@architecture("custom", check=check_custom, footprint=custom_footprint)
def custom(
    input_shape: tuple[int, int, int],
    num_classes: int,
    init: Initializer,
    rng: np.random.Generator,
    *,
    layers: list[dict] = [  # noqa: B006 (read, never changed); the seed network's features
        {"type": "conv", "out": 16}, {"type": "relu"}, {"type": "maxpool", "size": 2},
        {"type": "conv", "out": 32}, {"type": "relu"}, {"type": "maxpool", "size": 2},
    ],
) -> list[Layer]:
    """(N, H, W, C) -> (N, num_classes): the listed layers, then the classifier if missing.

    Unknown types, keys or values, or a layer that does not fit its input
    (a convolution after flattening, a window larger than the image), are found by
    check_custom first, naming the layer's index in `layers`.
    """
    shape: Shape = tuple(input_shape)
    built: list[Layer] = []
    for index, spec in enumerate(layers):
        new, shape = build_layer(*read_spec(index, spec), shape, init, rng)
        built += new
    if not (built and isinstance(built[-1], Dense) and built[-1].out_features == num_classes):
        new, shape = build_layer("dense", {"out": num_classes, "bias": True}, shape, init, rng)
        built += new
    return built
