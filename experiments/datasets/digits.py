"""`data=digits`: scikit-learn's 1,797 8x8 handwritten digits, no download, scaled up to
image_size x image_size RGB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data import Splits
from experiments.datasets.base import DATASETS
from experiments.datasets.held_out import (
    HeldOutDataConfig,
    keep_classes,
    make_splits,
    split_off_test,
)
from experiments.datasets.images import to_array


@DATASETS.register("digits")
@dataclass
class DigitsDataConfig(HeldOutDataConfig):
    """scikit-learn's 8x8 digits (no download), scaled up to image_size x image_size RGB."""

    name: str = "digits"

    num_classes = 10

    def load(self, seed: int) -> Splits:
        return prepare_digits(image_size=self.image_size, test_fraction=self.test_fraction,
                              n_train=self.n_train, n_val=self.n_val, seed=seed,
                              classes=self.classes)


def digit_images(image_size: int = 32) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], Path]:
    """scikit-learn's 1,797 8x8 digits as uint8 (N, S, S, 3), labels, names and source file.

    Their values run 0..16 with 16 for full ink; they become dark ink on white, as a digit
    written on paper and photographed would be, and are scaled up bilinearly exactly as
    an image file given to `experiments.predict` is.
    """
    import sklearn.datasets
    from PIL import Image

    digits = sklearn.datasets.load_digits()
    grey = np.rint(255.0 - digits.images * (255.0 / 16.0)).astype(np.uint8)
    shape = (image_size, image_size, 3)
    x = np.stack([to_array(Image.fromarray(g), shape) for g in grey])
    names = tuple(str(t) for t in digits.target_names)
    source = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    return x, digits.target.astype(np.int64), names, source


def prepare_digits(
    *,
    image_size: int = 32,
    test_fraction: float = 0.2,
    n_train: int | None = None,
    n_val: int = 0,
    seed: int = 0,
    classes: Sequence[int] | None = None,
) -> Splits:
    """scikit-learn's digits, no download: a stratified `test_fraction` is the test set.

    n_val, n_train, seed and classes act as for CIFAR-10 (cnn.data.prepare_cifar10).
    """
    x, labels, names, source = digit_images(image_size)
    kept, y_kept, kept_names = keep_classes(labels, names, classes)
    rest_idx, test_idx = split_off_test(y_kept, test_fraction)
    return make_splits(x[kept[rest_idx]], y_kept[rest_idx], x[kept[test_idx]],
                        y_kept[test_idx], n_train=n_train, n_val=n_val, seed=seed,
                        class_names=kept_names, source=source, shape=x.shape[1:])
