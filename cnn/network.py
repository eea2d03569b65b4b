"""Sequential: a stack of layers that is itself trained like one layer."""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from cnn.layers.activations import softmax
from cnn.layers.base import Layer, infer_in_order
from cnn.layers.block import Block


def _default_names(layers: Iterable[Layer]) -> list[str]:
    """conv1, relu1, pool1, conv2, ...: numbered per layer type, as people write them."""
    short = {
        "Conv2D": "conv",
        "MaxPool2D": "pool",
        "AvgPool2D": "avgpool",
        "Dense": "dense",
        "BatchNorm2D": "bn",
        "BatchNormReLU2D": "bn",  # its params keep batch norm's keys, fused or not
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


class WeightsFileError(WeightsMismatchError):
    """A weights file cannot be read: empty, truncated, corrupt, or not a `save` .npz."""


# Errors a damaged .npz can raise while it is opened or one of its arrays is read.
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def _read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the .npz at `path`; WeightsFileError names the file (and key) if not."""
    hint = "it is not a weights file written by Sequential.save, or it is damaged"
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except _READ_ERRORS as e:
        raise WeightsFileError(f"{path} cannot be read ({type(e).__name__}: {e}); {hint}") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise WeightsFileError(f"{path} holds a single array, not the named arrays of an .npz "
                               "that Sequential.save writes")
    arrays = {}
    with loaded as data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as e:
                if "pickle" not in str(e):
                    raise WeightsFileError(f"{path}: array {key!r} cannot be read ({e}); "
                                           f"{hint}") from e
                raise WeightsFileError(f"{path}: array {key!r} holds pickled objects, which "
                                       "are never loaded (they could run code)") from e
            except _READ_ERRORS as e:
                raise WeightsFileError(f"{path}: array {key!r} cannot be read "
                                       f"({type(e).__name__}: {e}); {hint}") from e
    return arrays


def _as_weight(value: object, target: np.ndarray, key: str, source: str,
               layer: str) -> np.ndarray:
    """`value` as a copy in `target`'s dtype, or WeightsMismatchError saying why it cannot be."""
    param = key[len(layer) + 1:]
    where = f"{source}: {key!r} (layer {layer!r}, parameter {param!r})"
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise WeightsMismatchError(f"{where} is not an array ({e})") from e
    # Strings would be parsed as numbers, bools and complex numbers silently changed: only
    # integers and floats are weights.
    if array.dtype.kind not in "iuf" or not np.can_cast(array.dtype, target.dtype, "same_kind"):
        raise WeightsMismatchError(f"{where} has dtype {array.dtype}, which cannot be cast to "
                                   f"the network's {target.dtype}")
    if array.shape != target.shape:
        raise WeightsMismatchError(f"{where} has shape {array.shape} in the file but "
                                   f"{target.shape} in the network")
    with np.errstate(over="ignore"):
        cast = array.astype(target.dtype)
    if not np.array_equal(np.isfinite(cast), np.isfinite(array)):
        raise WeightsMismatchError(f"{where} has values beyond the range of the network's "
                                   f"{target.dtype} (largest magnitude "
                                   f"{np.nanmax(np.abs(array)):g})")
    return cast


class Sequential(Block):
    """Applies layers in order: (N, *input_shape) -> (N, K) logits for a classifier.

    A block like any other: `params` and `grads` are flat dicts keyed "layer.param"
    (e.g. "conv1.W") that share their arrays with the layers, so an optimiser that
    updates them in place updates the network. A block inside is named like any
    layer ("res1", or a name the model gives, "stage2.block1"), and its own keys
    follow: "stage2.block1.conv1.W".

    A network whose input is data needs no gradient for it: `input_grad = False`
    (as cnn.models.build_model sets it) makes the first layer skip computing it,
    and backward return None.
    """

    def __init__(
        self,
        layers: list[Layer],
        names: list[str | None] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        layers = list(layers)
        # A None among the names takes the default, so a model can name only its blocks.
        given = names or [None] * len(layers)
        if len(given) != len(layers):
            raise ValueError(f"{len(given)} names for {len(layers)} layers")
        full = [n or d for n, d in zip(given, _default_names(layers), strict=True)]
        if len(set(full)) != len(full):
            raise ValueError(f"layer names must be unique, got {full}")
        super().__init__(dict(zip(full, layers, strict=True)))
        self.input_shape = input_shape

    @property
    def layers(self) -> list[Layer]:
        """The layers in order (a new list: replace one through `sublayers[name]`)."""
        return list(self.sublayers.values())

    @property
    def names(self) -> list[str]:
        return list(self.sublayers)

    # -- passes -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.sublayers.values():
            x = layer(x, training)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Gradient of the loss for the input (None if not input_grad); fills every
        layer's grads."""
        for layer in reversed(self.layers):
            dout = layer.backprop(dout)
        return dout if self.input_grad else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        """forward(x, training=False) up to rounding, faster, keeping nothing for backward:
        each layer folds in what it can of the layers after it (batch norm and ReLU into
        the convolution before them, Layer.fold)."""
        return infer_in_order(self.layers, x)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) in evaluation mode, batch by batch."""
        chunks = [
            softmax(self.infer(x[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(chunks)

    # -- parameters -------------------------------------------------------------------------
    def named_layers(self) -> Iterable[tuple[str, Layer]]:
        return self.sublayers.items()

    def num_params(self) -> int:
        return sum(v.size for v in self.parameters())

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    # -- weights on disk --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers, copied: everything needed to restore the network."""
        return {k: v.copy() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state: Mapping[str, object], source: str = "state") -> None:
        """Copy arrays into the network; every key, shape and dtype must fit.

        Everything is checked before anything is written, so a bad entry leaves the
        network as it was; WeightsMismatchError names `source` and the key.
        """
        checked = self.check_state_dict(state, source)
        own = {**self.params, **self.buffers}
        for key, value in checked.items():
            own[key][...] = value

    def check_state_dict(self, state: Mapping[str, object], source: str = "state"
                         ) -> dict[str, np.ndarray]:
        """`state` as copies in the network's dtypes, or WeightsMismatchError; writes nothing."""
        own = {**self.params, **self.buffers}
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        if missing or unexpected:
            raise WeightsMismatchError(
                f"{source} does not fit this network: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        return {key: _as_weight(state[key], target, key, source, self._layer_of(key))
                for key, target in own.items()}

    def _layer_of(self, key: str) -> str:
        """The layer a "layer.param" key belongs to; names may hold dots ("stage2.block1")."""
        return max((n for n in self.names if key.startswith(n + ".")), key=len, default="")

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and buffers to an .npz file (no pickle)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | os.PathLike) -> None:
        """Read weights written by `save`; the network is unchanged unless all of them fit.

        Raises WeightsMismatchError naming the file and key (WeightsFileError if the file
        cannot be read: empty, truncated, pickled objects), FileNotFoundError if missing.
        """
        self.load_state_dict(_read_npz(path), source=str(path))

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
