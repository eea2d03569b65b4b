"""Unpickling limited to the NumPy names that the CIFAR-10 batch files need.

A pickle can call any importable function while it loads, so a tampered or
mistaken file could run code. The CIFAR-10 files only need NumPy's array
reconstruction, so every other global is refused before it is imported. The one
exception is `_codecs.encode`, which Python 3 uses to store bytes at protocol 2
(see `_latin1_encode`): a batch re-saved with `pickle.dump(obj, f, protocol=2)` needs it.

Allowed names are not all harmless with any argument: `numpy.ndarray(shape, dtype,
buffer, offset, strides)` with zero strides makes an array of any size from one byte,
and without a buffer allocates one. A direct call must be backed by the bytes the file
holds (see `_BackedNdarray`).
"""

import importlib
import math
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cnn.data.errors import UnsafePickleError

# (module, name) pairs as they appear in the pickle. The official files were written by
# NumPy 1.x under Python 2 (`numpy.core.*`); NumPy 2 writes `numpy._core.*`; protocol 5
# pickles use `_frombuffer`. Each resolves to the same harmless constructor.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


# Python 3 pickles a bytes object at protocol 2 as `_codecs.encode(<text>, "latin1")`.
_CODECS_ENCODE = ("_codecs", "encode")
_LATIN1 = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"})


def _latin1_encode(source: str):
    """Stands in for `_codecs.encode`, accepting only what protocol 2 writes (text, latin1),
    so a pickle cannot reach any other codec through it."""

    def encode(text: object, encoding: object = "utf-8", errors: object = "strict") -> bytes:
        if not isinstance(text, str) or not isinstance(encoding, str) or errors != "strict":
            raise UnsafePickleError(
                f"{source}: refused _codecs.encode of {type(text).__name__} with "
                f"{encoding!r}/{errors!r}; protocol 2 only encodes text as latin1"
            )
        if encoding.lower() not in _LATIN1:
            raise UnsafePickleError(
                f"{source}: refused _codecs.encode with encoding {encoding!r}; protocol 2 "
                "only encodes text as 'latin1'"
            )
        return text.encode("latin1")

    return encode


class _BackedNdarray:
    """Stands in for `numpy.ndarray` in a pickle: called, it builds an array only over a
    buffer holding every byte of it, with the strides of a contiguous array; passed to
    `_reconstruct` (as every array NumPy pickles is), it is NumPy's ndarray again."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, shape: Any, dtype: Any = float, buffer: Any = None, offset: int = 0,
                 strides: Any = None, order: Any = None) -> np.ndarray:
        try:
            shape = (int(shape),) if isinstance(shape, int) else tuple(int(n) for n in shape)
            dtype, offset = np.dtype(dtype), int(offset)
        except (TypeError, ValueError) as e:
            raise UnsafePickleError(f"{self.source}: an ndarray with shape {shape!r:.80} and "
                                    f"dtype {dtype!r:.80} cannot be read ({e})") from e
        needed = math.prod(shape) * dtype.itemsize
        held = 0 if buffer is None else memoryview(buffer).nbytes - max(offset, 0)
        if needed > held:
            raise UnsafePickleError(
                f"{self.source}: an ndarray of shape {shape} ({dtype}) needs {needed:,} bytes "
                f"but the file gives it {max(held, 0):,}; a genuine CIFAR-10 file stores every "
                "byte of its arrays. Delete it and extract or download the dataset again.")
        array = np.ndarray(shape, dtype, buffer, offset, None, order)
        if strides is not None and tuple(strides) != array.strides:
            raise UnsafePickleError(
                f"{self.source}: an ndarray of shape {shape} with strides {tuple(strides)} "
                f"(contiguous ones are {array.strides}) may repeat its bytes; a genuine "
                "CIFAR-10 file has none. Delete it and extract or download the dataset again.")
        return array


def _reconstruct_with(real: Any) -> Any:
    def reconstruct(subtype: Any, *args: Any) -> Any:
        return real(np.ndarray if isinstance(subtype, _BackedNdarray) else subtype, *args)

    return reconstruct


def _import_numpy_global(module: str, name: str) -> Any:
    # Prefer the NumPy 2 spelling: importing `numpy.core` there warns that it is deprecated,
    # and NumPy 1.x may lack `numpy._core`, hence the fallback.
    candidates = [module]
    if module.startswith("numpy.core."):
        candidates.insert(0, "numpy._core." + module.removeprefix("numpy.core."))
    elif module.startswith("numpy._core."):
        candidates.append("numpy.core." + module.removeprefix("numpy._core."))
    for candidate in candidates:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot import allowed global {module}.{name} from NumPy")


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only ALLOWED_GLOBALS and refuses everything else.

    `source` names the file in error messages.
    """

    def __init__(self, file: BinaryIO, *, source: str | os.PathLike = "<pickle>") -> None:
        # The batch files are Python 2 pickles: `encoding="bytes"` keeps their str objects
        # (keys, label names, the raw pixel buffer) as bytes instead of guessing a text codec.
        super().__init__(file, encoding="bytes")
        self.source = str(source)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy", "ndarray"):
            return _BackedNdarray(self.source)
        if (module, name) in ALLOWED_GLOBALS:
            found = _import_numpy_global(module, name)
            return _reconstruct_with(found) if name == "_reconstruct" else found
        if (module, name) == _CODECS_ENCODE:
            return _latin1_encode(self.source)
        raise UnsafePickleError(
            f"{self.source}: refused to unpickle global '{module}.{name}'; CIFAR-10 files only "
            "contain NumPy arrays, so this file is not a genuine CIFAR-10 batch. Delete it and "
            "extract or download the dataset again (check CIFAR10_ROOT / data.root)."
        )


def load_pickle(path: str | os.PathLike) -> Any:
    """Unpickle `path` with SafeUnpickler (raises UnsafePickleError on a refused global)."""
    with open(path, "rb") as f:
        return SafeUnpickler(f, source=Path(path)).load()
