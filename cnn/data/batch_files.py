"""Reading CIFAR-10's batch files: one pickled dict per file, checked key by key, its
channel-major rows turned into channels-last images (cnn.data.cifar10 finds the files)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnn.data.errors import CorruptDatasetError, UnsafePickleError
from cnn.data.safe_pickle import load_pickle

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
_ROW_LENGTH = 32 * 32 * 3


def _get(batch: Mapping[Any, Any], key: str, path: Path) -> Any:
    # Python 2 pickles read with encoding="bytes" have bytes keys; re-saved ones have str keys.
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise CorruptDatasetError(
        f"{path}: the key {key!r} is missing (found {sorted(map(repr, batch))}). "
        f"Delete {path.parent} and extract or download CIFAR-10 again."
    )


def _read_pickle(path: Path) -> Mapping[Any, Any]:
    redo = f"Delete {path.parent} and extract or download CIFAR-10 again (check CIFAR10_ROOT)."
    if not path.is_file():
        raise CorruptDatasetError(f"{path} is missing, so the dataset is incomplete. {redo}")
    try:
        obj = load_pickle(path)
    except UnsafePickleError:
        raise
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same here
        raise CorruptDatasetError(
            f"{path} cannot be read; it is truncated or corrupt ({type(e).__name__}: {e}). " + redo
        ) from e
    if not isinstance(obj, Mapping):
        raise CorruptDatasetError(
            f"{path} holds a {type(obj).__name__}, not the dict a CIFAR-10 file holds. {redo}"
        )
    return obj


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file; return images uint8 (N, 32, 32, 3), a channels-last view of
    the file's rows (not yet contiguous), and labels int64 (N,)."""
    batch = _read_pickle(path)
    redo = f"Delete {path.parent} and extract or download CIFAR-10 again (check CIFAR10_ROOT)."
    data = _get(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        kind = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        raise CorruptDatasetError(f"{path}: 'data' should be a uint8 array, found {kind}. {redo}")
    if data.ndim != 2 or data.shape[1] != _ROW_LENGTH or data.shape[0] == 0:
        raise CorruptDatasetError(
            f"{path}: 'data' should have shape (N, {_ROW_LENGTH}) with N > 0, found "
            f"{data.shape}. {redo}"
        )
    # Whatever the pickle did to build it, the pixels must be bytes of this file: an array
    # over a repeated byte or memory of its own would train on images nobody stored.
    size = path.stat().st_size
    if data.nbytes > size or data.strides != (_ROW_LENGTH, 1):
        raise CorruptDatasetError(
            f"{path}: 'data' claims {len(data):,} images ({data.nbytes:,} bytes, strides "
            f"{data.strides}), which the file's {size:,} bytes do not hold. {redo}"
        )
    try:
        labels = np.asarray(_get(batch, "labels", path))
    except (TypeError, ValueError) as e:
        raise CorruptDatasetError(
            f"{path}: 'labels' is not a list of integers ({e}). {redo}"
        ) from e
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise CorruptDatasetError(
            f"{path}: 'labels' should be a flat list of integers, found dtype {labels.dtype} "
            f"and shape {labels.shape}. {redo}"
        )
    if len(labels) != len(data):
        raise CorruptDatasetError(f"{path}: {len(data)} images but {len(labels)} labels. {redo}")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        raise CorruptDatasetError(
            f"{path}: label {labels[bad][0]} at index {int(np.flatnonzero(bad)[0])} is outside "
            f"0..{NUM_CLASSES - 1}. {redo}"
        )
    # Rows are channel-major (1024 red, 1024 green, 1024 blue, each row-major 32x32).
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def read_class_names(path: Path) -> tuple[str, ...]:
    meta = _read_pickle(path)
    names = _get(meta, "label_names", path)
    if not isinstance(names, list | tuple) or len(names) != NUM_CLASSES:
        raise CorruptDatasetError(
            f"{path}: 'label_names' should list {NUM_CLASSES} names, found {names!r:.200}. "
            f"Delete {path.parent} and extract or download CIFAR-10 again."
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_split(folder: Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    # Each batch is copied channels-last straight into its place in one array and let go
    # before the next is read, so loading holds the set once plus one batch (collecting
    # contiguous batches and concatenating them held it twice). The array is sized from
    # the first batch; np.empty maps pages only as they are written, and batches of
    # other sizes (a hand-made subset) grow it.
    x: np.ndarray | None = None
    labels = []
    start = 0
    for name in files:
        images, batch_labels = _read_batch(folder / name)
        if x is None:
            x = np.empty((len(images) * len(files), *IMAGE_SHAPE), dtype=np.uint8)
        elif start + len(images) > len(x):
            grown = np.empty((start + len(images) * (len(files) - len(labels)), *IMAGE_SHAPE),
                             dtype=np.uint8)
            grown[:start] = x[:start]
            x = grown
        x[start : start + len(images)] = images
        start += len(images)
        labels.append(batch_labels)
        del images  # the file's rows, before the next file is read
    assert x is not None  # files is never empty
    x = x[:start] if start == len(x) else x[:start].copy()
    y = np.concatenate(labels)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
