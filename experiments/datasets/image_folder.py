"""`data=image_folder`: a folder of class folders of images, laid out as common tools expect,

    root/<class>/<image>                 split into train and test by `test_fraction`
    root/train/<class>/<image>, root/test/<class>/<image>     split by folder

Class names are the sub-folder names, labels their sorted order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data import Splits
from cnn.data.errors import CorruptDatasetError, DatasetNotFoundError
from experiments.datasets.base import DATASETS
from experiments.datasets.held_out import (
    HeldOutDataConfig,
    keep_classes,
    make_splits,
    split_off_test,
)
from experiments.datasets.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

SHOWN = 5  # symlinks named in a warning; the rest are counted


@DATASETS.register("image_folder")
@dataclass
class ImageFolderDataConfig(HeldOutDataConfig):
    """root/<class>/<image>, or root/train/<class>/... and root/test/<class>/...; the test
    fraction is held out only when root has no train/ and test/."""

    name: str = "image_folder"
    root: str | None = None  # the folder; required (None says so at load)

    num_classes = None  # known once the folder is read

    def load(self, seed: int) -> Splits:
        return prepare_image_folder(self.root, image_size=self.image_size,
                                    test_fraction=self.test_fraction, n_train=self.n_train,
                                    n_val=self.n_val, seed=seed, classes=self.classes)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(folder: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Every image file under `folder`/<class>/ (sub-folders too), its label, the class names.

    Files with other suffixes are skipped, as other tools do; a class with no image fails.
    Symlinks are followed to files and as class folders, not to folders further down (as
    rglob does); a warning names those followed out of `folder` and those skipped.
    """
    class_dirs = _visible_dirs(folder)
    if not class_dirs:
        raise DatasetNotFoundError(
            f"{folder} has no class sub-folders: put each class's images in "
            f"{folder}/<class name>/ (data=image_folder)")
    files: list[Path] = []
    labels: list[int] = []
    links = _Symlinks(folder.resolve())
    for class_dir in class_dirs:
        links.note(class_dir)
    for label, class_dir in enumerate(class_dirs):
        entries = [p for p in class_dir.rglob("*")
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
        for p in entries:
            links.note(p)
        found = sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            links.warn(folder)  # a class whose images all sit behind a skipped symlink
            raise DatasetNotFoundError(
                f"{class_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    links.warn(folder)
    return files, np.asarray(labels, dtype=np.int64), tuple(d.name for d in class_dirs)


class _Symlinks:
    """The symlinks of a scan the user may not expect to matter: those followed out of the
    folder (its images are then read from elsewhere) and those skipped (a directory symlink
    below a class folder is not entered, as other tools do, so its images are not used)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.followed: list[str] = []
        self.skipped: list[str] = []

    def note(self, path: Path) -> None:
        if not path.is_symlink():
            return
        target = path.resolve()
        if path.is_dir():
            # A class folder that is a symlink is read; one further down is not.
            if path.parent.resolve() != self.root:
                self.skipped.append(f"{path} -> {target}")
                return
        elif not path.is_file():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                self.skipped.append(f"{path} -> {target} (broken)")
            return
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            return
        if not target.is_relative_to(self.root):
            self.followed.append(f"{path} -> {target}")

    def warn(self, folder: Path) -> None:
        if self.followed:
            log.warning("%s: followed %s to images outside the folder: %s", folder,
                        _count(len(self.followed)), _first(self.followed))
        if self.skipped:
            log.warning("%s: skipped %s, so the images there are not used (a directory "
                        "symlink is entered only as a class folder; copy the images in to "
                        "use them): %s", folder, _count(len(self.skipped)), _first(self.skipped))


def _count(n: int) -> str:
    return f"{n} symlink{'s' if n != 1 else ''}"


def _first(items: list[str]) -> str:
    more = len(items) - SHOWN
    return "; ".join(items[:SHOWN]) + (f"; and {more} more" if more > 0 else "")


def prepare_image_folder(
    root: str | os.PathLike | None,
    *,
    image_size: int = 32,
    test_fraction: float = 0.2,
    n_train: int | None = None,
    n_val: int = 0,
    seed: int = 0,
    classes: Sequence[int] | None = None,
) -> Splits:
    """The images of a folder of class folders, as uint8 (N, image_size, image_size, 3).

    With `root`/train/ and `root`/test/ the test set is `test/` and `test_fraction` is not
    used; otherwise a stratified `test_fraction` of each class is held out, the same
    images for every seed. n_val, n_train, seed and classes act as for CIFAR-10
    (cnn.data.prepare_cifar10); classes are indices into the sorted class names.
    """
    if root is None:
        raise DatasetNotFoundError(
            "data=image_folder needs the folder: set data.root=/path/to/folder "
            "(one sub-folder of images per class, or train/ and test/ holding those)")
    folder = Path(root).expanduser().resolve()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"data.root={root}: no such folder ({folder})")
    shape = (image_size, image_size, 3)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        files, labels, names = scan_class_folders(folder / "train")
        test_files, test_names_labels, test_names = scan_class_folders(folder / "test")
        unknown = sorted(set(test_names) - set(names))
        if unknown:
            raise CorruptDatasetError(
                f"{folder / 'test'} has classes that {folder / 'train'} lacks: "
                f"{', '.join(unknown)}")
        to_train_label = np.asarray([names.index(n) for n in test_names], dtype=np.int64)
        test_labels = to_train_label[test_names_labels]
        rest, y_rest, kept_names = keep_classes(labels, names, classes)
        test, y_test, _ = keep_classes(test_labels, names, classes)
        rest_files, test_files = [files[i] for i in rest], [test_files[i] for i in test]
    else:
        files, labels, names = scan_class_folders(folder)
        kept, y_kept, kept_names = keep_classes(labels, names, classes)
        rest_idx, test_idx = split_off_test(y_kept, test_fraction)
        rest_files = [files[kept[i]] for i in rest_idx]
        test_files = [files[kept[i]] for i in test_idx]
        y_rest, y_test = y_kept[rest_idx], y_kept[test_idx]
    if len(kept_names) < 2:
        # One class is learnt perfectly by always answering it: a meaningless 100%.
        raise ValueError(
            f"{folder} has one class sub-folder ({kept_names[0]}); data=image_folder needs "
            "at least two, one sub-folder of images per class")
    return make_splits(rest_files, y_rest, test_files, y_test, n_train=n_train, n_val=n_val,
                        seed=seed, class_names=kept_names, source=folder, shape=shape)
