"""The arrays one run uses (`Splits`), and the seeded, stratified and nested choice of its
training and validation images."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _round_robin(groups: list[np.ndarray]) -> np.ndarray:
    """Interleave index arrays: first element of each group, then the second of each, ...

    Groups that run out simply drop out, so every prefix of the result holds each group
    within one element of the others for as long as the groups last.
    """
    if not groups:
        return np.zeros(0, dtype=np.int64)
    ranks = np.concatenate([np.arange(len(g)) for g in groups])
    group_ids = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    order = np.lexsort((group_ids, ranks))  # by rank, then by the groups' fixed order
    return np.concatenate(groups).astype(np.int64)[order]


def stratified_split(
    labels: np.ndarray,
    n_train: int | None,
    n_val: int,
    seed: int,
    classes: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose disjoint training and validation indices into `labels`, balanced by class.

    labels: integer array (N,). classes: the labels to draw from (default: all present).
    n_val images are taken first, then n_train from the rest (None: all the rest). Each
    split holds every class within one image of the others, as long as classes have enough
    images; a class that runs out leaves the remainder to the others.

    For one seed and n_val, the choice is nested: the training set for a smaller n_train is
    contained in the one for a larger n_train. This holds because each class is permuted
    once by the seed, validation comes from the front of each permutation, and training
    images are a prefix of the classes interleaved round-robin in a seeded class order.

    Returns (train_idx, val_idx), sorted int64 index arrays.

    Raises ValueError if more images are asked for than the chosen classes hold.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a 1-D integer array, got dtype {labels.dtype} shape {labels.shape}"
        )
    if n_val < 0 or (n_train is not None and n_train < 0):
        raise ValueError(f"n_train and n_val must be >= 0, got n_train={n_train}, n_val={n_val}")
    if classes is None:
        chosen = [int(c) for c in np.unique(labels)]
    else:
        chosen = [int(c) for c in classes]
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"classes must not repeat, got {list(classes)}")
        empty = [c for c in chosen if not np.any(labels == c)]
        if empty:
            raise ValueError(f"classes {empty} have no images among the {len(labels)} labels")

    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in chosen]
    # A seeded class order decides which classes get the one extra image when a split
    # does not divide evenly, instead of always favouring the lowest labels.
    class_order = rng.permutation(len(chosen))
    per_class = [per_class[i] for i in class_order]

    total = sum(len(p) for p in per_class)
    if n_val > total:
        raise ValueError(f"n_val={n_val} asked for, but classes {chosen} have only {total} images")
    val = _round_robin(per_class)[:n_val]
    val_counts = [int(np.isin(p, val).sum()) for p in per_class]
    remaining = [p[k:] for p, k in zip(per_class, val_counts, strict=True)]

    available = total - n_val
    if n_train is None:
        n_train = available
    if n_train > available:
        raise ValueError(
            f"n_train={n_train} asked for, but classes {chosen} have only {available} images "
            f"left after n_val={n_val} validation images ({total} in all)"
        )
    train = _round_robin(remaining)[:n_train]
    return np.sort(train), np.sort(val)


def check_classes(
    classes: Sequence[int] | None, num_classes: int, names: Sequence[str] = ()
) -> list[int]:
    """The labels a run keeps, checked: every label for None, else a non-empty list of
    distinct labels in 0..num_classes-1 (names, when given, are shown in the message)."""
    if classes is None:
        return list(range(num_classes))
    chosen = [int(c) for c in classes]
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"classes must be a non-empty list without repeats, got {chosen}")
    outside = [c for c in chosen if not 0 <= c < num_classes]
    if outside:
        known = f" ({', '.join(names)})" if names else ""
        raise ValueError(f"classes {outside} are not labels here: they run 0..{num_classes - 1}"
                         f"{known}")
    return chosen


def label_map(chosen: Sequence[int], num_classes: int) -> np.ndarray:
    """(num_classes,) int64: old label -> its position in `chosen`, -1 for dropped classes."""
    mapping = np.full(num_classes, -1, dtype=np.int64)
    mapping[list(chosen)] = np.arange(len(chosen))
    return mapping


def select_classes(
    labels: np.ndarray, chosen: Sequence[int], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the images of the chosen classes, their labels renumbered 0..k-1 in the
    order of `chosen`)."""
    kept = np.flatnonzero(np.isin(labels, chosen))  # (M,)
    return kept, label_map(chosen, num_classes)[labels[kept]]


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
