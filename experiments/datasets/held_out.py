"""Datasets without an official split (image folders, digits): the classes a run keeps,
a test set held out the same way for every seed, and the rest split as CIFAR-10's is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data import Splits, check_classes, select_classes, stratified_split
from experiments.datasets.base import DataConfig
from experiments.datasets.images import load_images


@dataclass
class HeldOutDataConfig(DataConfig):
    """The keys of datasets whose images are resized and whose test set is held out here."""

    image_size: int = 32  # every image is resized to image_size x image_size RGB
    test_fraction: float = 0.2  # held out per class, the same images whatever the seed

    @property
    def image_side(self) -> int:
        return self.image_size

    def problems(self) -> list[str]:
        found = super().problems()
        if self.image_size < 8:  # three 2x2 poolings (vgg) must leave at least one pixel
            found.append(f"data.image_size must be >= 8, got {self.image_size}")
        if not 0 < self.test_fraction < 1:
            found.append(f"data.test_fraction must be in (0, 1), got {self.test_fraction}")
        return found


# The held-out test images must not change with trainer.seed, or runs with different
# seeds would be scored on different images; CIFAR-10's official test set is fixed too.
TEST_SPLIT_SEED = 0


def keep_classes(
    labels: np.ndarray, class_names: tuple[str, ...], classes: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(indices kept, their labels renumbered 0..k-1 in `classes` order, the kept names)."""
    if classes is None:
        return np.arange(len(labels)), labels, class_names
    try:
        chosen = check_classes(classes, len(class_names), class_names)
    except ValueError as e:
        raise ValueError(f"data.{e}") from e
    kept, new_labels = select_classes(labels, chosen, len(class_names))
    return kept, new_labels, tuple(class_names[c] for c in chosen)


def split_off_test(labels: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test) indices: a stratified `test_fraction` of the images, the same every run."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(max(round(test_fraction * len(labels)), 1), len(labels) - 1)
    if n_test < 1:
        raise ValueError(f"{len(labels)} image(s) cannot be split into training and test sets")
    rest, test = stratified_split(labels, None, n_test, TEST_SPLIT_SEED)
    return rest, test


def make_splits(
    x_rest: np.ndarray | list[Path],
    y_rest: np.ndarray,
    x_test: np.ndarray | list[Path],
    y_test: np.ndarray,
    *,
    n_train: int | None,
    n_val: int,
    seed: int,
    class_names: tuple[str, ...],
    source: Path,
    shape: tuple[int, int, int],
) -> Splits:
    """Carve validation and training images from the rest (as for CIFAR-10) and build Splits.

    `x_rest` and `x_test` are either images or image files; files are read only once
    chosen, so a small n_train from a large folder decodes only what it uses.
    """
    train_idx, val_idx = stratified_split(y_rest, n_train, n_val, seed)

    def images(x: np.ndarray | list[Path], idx: np.ndarray) -> np.ndarray:
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x[idx])
        return load_images([x[i] for i in idx], shape)

    splits = Splits(
        x_train=images(x_rest, train_idx),
        y_train=y_rest[train_idx].astype(np.int64),
        x_val=images(x_rest, val_idx),
        y_val=y_rest[val_idx].astype(np.int64),
        x_test=images(x_test, np.arange(len(y_test))),
        y_test=y_test.astype(np.int64),
        class_names=class_names,
        source=source,
    )
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        getattr(splits, name).setflags(write=False)
    return splits
