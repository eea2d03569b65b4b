"""The single entry point that turns a data config into train/validation/test arrays."""

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data.batches import NUM_CLASSES
from cnn.data.cifar10 import OFFICIAL_MD5, OFFICIAL_URL, load_cifar10
from cnn.data.splits import check_classes, label_map, stratified_split


@dataclass(frozen=True, eq=False)
class Splits:
    """The images and labels one run uses; arrays are read-only.

    x_train, x_val, x_test: uint8 (N, 32, 32, 3) (x_val may be (0, 32, 32, 3)).
    y_train, y_val, y_test: int64 (N,) in 0..num_classes-1.
    class_names: names indexed by those labels. source: the folder the data came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: Path

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def digest(self) -> str:
        """Short sha256 (16 hex digits) of the images and labels of all three splits.

        Two runs with the same digest trained, validated and tested on identical data.
        """
        h = hashlib.sha256()
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            array = np.ascontiguousarray(getattr(self, name))
            # Shape and dtype mark where one array ends, so moving an image from one split
            # to another changes the digest.
            h.update(f"{name}{array.shape}{array.dtype.str};".encode())
            h.update(array.data)
        return h.hexdigest()[:16]


def _read_only(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


# Rows gathered at a time when compacting in place: a few MB of temporary copy.
_GATHER_CHUNK = 2048


def _take(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[idx] for sorted, distinct indices, where x is a freshly loaded array no one else
    holds. Taking most of the rows reuses x's memory, so the full training set plus the
    chosen part of it (nearly two copies) are never held at once.

    All rows: x itself. At least half: the rows are moved to the front of x in chunks and
    a view of that front is returned; this is safe because idx[j] >= j, so a chunk reads
    only rows at or after the ones it writes. Fewer: a copy, so x can be freed.
    """
    if len(idx) == len(x):
        return x
    if 2 * len(idx) < len(x):
        return x[idx]
    x.setflags(write=True)  # the loader's own array, made read-only for its callers
    for start in range(0, len(idx), _GATHER_CHUNK):
        part = idx[start : start + _GATHER_CHUNK]
        x[start : start + len(part)] = x[part]
    return x[: len(idx)]


def prepare_cifar10(
    root: str | os.PathLike | None = None,
    *,
    n_train: int | None = None,
    n_val: int = 0,
    seed: int = 0,
    classes: Sequence[int] | None = None,
    download: bool = False,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
) -> Splits:
    """Load CIFAR-10 and select the images of one run.

    root, download, url, md5: as for load_cifar10 (root None: $CIFAR10_ROOT, else ./data).
    classes: labels to keep, e.g. [3, 5] (cat, dog); they become 0..k-1 in this order in
        every split and class_names follows. None keeps all 10.
    n_val: validation images carved, stratified, from the official training set.
    n_train: training images from the rest (None: all the rest), stratified and nested
        across sizes for one seed (see stratified_split).
    The test split is the whole official test set for the kept classes.
    """
    # Checked before loading so that a config typo fails at once, not after the read.
    chosen = check_classes(classes, NUM_CLASSES)
    data = load_cifar10(root, download=download, url=url, md5=md5)
    train_idx, val_idx = stratified_split(data.y_train, n_train, n_val, seed, chosen)
    test_idx = np.flatnonzero(np.isin(data.y_test, chosen))

    new_label = label_map(chosen, NUM_CLASSES)
    # Validation first: taking the training rows may reuse data.x_train's memory.
    x_val = data.x_train[val_idx]
    splits = Splits(
        x_train=_take(data.x_train, train_idx),
        y_train=new_label[data.y_train[train_idx]],
        x_val=x_val,
        y_val=new_label[data.y_train[val_idx]],
        x_test=_take(data.x_test, test_idx),
        y_test=new_label[data.y_test[test_idx]],
        class_names=tuple(data.class_names[c] for c in chosen),
        source=data.source,
    )
    _read_only(
        splits.x_train, splits.y_train, splits.x_val, splits.y_val, splits.x_test, splits.y_test
    )
    return splits
