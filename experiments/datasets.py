"""Datasets besides CIFAR-10: a folder of class folders of images, and scikit-learn's digits.

Both give the same `cnn.data.Splits` as CIFAR-10 (uint8 (N, S, S, 3) images, int64 labels),
so normalisation, augmentation and the network's input shape and class count follow from
the data with nothing else to change. Pillow decodes and resizes images here, not in
`cnn/`, which stays NumPy and the standard library only.

An image folder is laid out as common tools expect, either

    root/<class>/<image>                 split into train and test by `test_fraction`
    root/train/<class>/<image>, root/test/<class>/<image>     split by folder

Class names are the sub-folder names, labels their sorted order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnn.data.errors import CorruptDatasetError, DatasetNotFoundError
from cnn.data.splits import stratified_split

if TYPE_CHECKING:
    from PIL import Image

    from cnn.data import Splits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# The held-out test images must not change with trainer.seed, or runs with different
# seeds would be scored on different images; CIFAR-10's official test set is fixed too.
TEST_SPLIT_SEED = 0


# -- one image -------------------------------------------------------------------------------


def to_array(image: Image.Image, shape: Sequence[int]) -> np.ndarray:
    """A decoded image as the network's input: uint8 (H, W, C), C = 3 (RGB) or 1 (grey).

    The image is turned upright from its EXIF orientation (phone photos), transparent
    pixels are laid on white (their own colour values are often arbitrary), and the
    whole image is resized to W x H without keeping its aspect ratio.

    16-bit greyscale (Pillow modes "I;16*") becomes 8-bit as round(v * 255 / 65535). 32-bit
    integer images (mode "I") are read the same way, as 16-bit samples clipped to 0..65535:
    that is what Pillow decodes 16-bit files to in some versions and after some operations.
    """
    from PIL import Image, ImageOps

    height, width, channels = (int(n) for n in shape)
    if channels not in (1, 3):
        raise ValueError(f"images need 1 or 3 channels, got shape {tuple(shape)}")
    image = ImageOps.exif_transpose(image)
    if image.mode == "I" or image.mode.startswith("I;16"):
        # Pillow's own conversion to 8 bits clips at 255 instead of scaling, which turns a
        # 16-bit gradient into black and white; scale first, keeping a transparent value.
        wide = np.asarray(image, dtype=np.int64)
        grey = np.rint(np.clip(wide, 0, 65535) * (255 / 65535)).astype(np.uint8)
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):
            alpha = np.where(wide == transparent, 0, 255).astype(np.uint8)
            image = Image.fromarray(np.stack([grey, alpha], axis=-1))  # mode "LA"
        else:
            image = Image.fromarray(grey)  # mode "L"
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB" if channels == 3 else "L")
    if image.size != (width, height):
        # Pillow's bilinear filter widens with the scale factor, so downscaling is antialiased.
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def load_image(path: str | os.PathLike, shape: Sequence[int]) -> np.ndarray:
    """Read one image file (any format and mode Pillow reads) as uint8 `shape` (H, W, C).

    Raises FileNotFoundError if there is no such file, CorruptDatasetError naming the
    file if it cannot be decoded, or if it has more pixels than Pillow's guard against
    decompression bombs allows: PIL.Image.MAX_IMAGE_PIXELS (about 89 million by default;
    Pillow warns above it and refuses twice that). To read such images on purpose, set
    `PIL.Image.MAX_IMAGE_PIXELS` higher (None: no limit) in the process before loading.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return to_array(image, shape)
    except FileNotFoundError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # The warning arrives here only where warnings are errors (python -W error).
        limit = Image.MAX_IMAGE_PIXELS
        raise CorruptDatasetError(
            f"{path}: refused as a possible decompression bomb: {e} Pillow's limit, "
            f"PIL.Image.MAX_IMAGE_PIXELS, is {f'{limit:,}' if limit else 'off'} pixels (it "
            "warns above it and refuses twice it). The image is resized to "
            f"{shape[1]}x{shape[0]} anyway, so a smaller copy of it works as well; to read it "
            "as it is, raise the limit in the process that reads it before loading: "
            "`PIL.Image.MAX_IMAGE_PIXELS = <pixels>` (None removes the limit)."
        ) from e
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise CorruptDatasetError(f"{path}: cannot be read as an image ({e})") from e


def load_images(paths: Sequence[Path], shape: Sequence[int]) -> np.ndarray:
    """Read image files into one uint8 array (N, H, W, C)."""
    out = np.empty((len(paths), *shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_image(path, shape)
    return out


# -- selecting and splitting -----------------------------------------------------------------


def _keep_classes(
    labels: np.ndarray, class_names: tuple[str, ...], classes: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(indices kept, their labels renumbered 0..k-1 in `classes` order, the kept names)."""
    if classes is None:
        return np.arange(len(labels)), labels, class_names
    chosen = [int(c) for c in classes]
    if not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(f"data.classes must be a non-empty list without repeats, got {chosen}")
    outside = [c for c in chosen if not 0 <= c < len(class_names)]
    if outside:
        raise ValueError(f"data.classes {outside}: the labels are 0..{len(class_names) - 1} "
                         f"({', '.join(class_names)})")
    new_label = np.full(len(class_names), -1, dtype=np.int64)
    new_label[chosen] = np.arange(len(chosen))
    kept = np.flatnonzero(np.isin(labels, chosen))
    return kept, new_label[labels[kept]], tuple(class_names[c] for c in chosen)


def split_off_test(labels: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(rest, test) indices: a stratified `test_fraction` of the images, the same every run."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(max(round(test_fraction * len(labels)), 1), len(labels) - 1)
    if n_test < 1:
        raise ValueError(f"{len(labels)} image(s) cannot be split into training and test sets")
    rest, test = stratified_split(labels, None, n_test, TEST_SPLIT_SEED)
    return rest, test


def _make_splits(
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
    from cnn.data import Splits

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


# -- image folders -----------------------------------------------------------------------------


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(folder: Path) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Every image file under `folder`/<class>/ (sub-folders too), its label, the class names.

    Files with other suffixes are skipped, as other tools do; a class with no image fails.
    """
    class_dirs = _visible_dirs(folder)
    if not class_dirs:
        raise DatasetNotFoundError(
            f"{folder} has no class sub-folders: put each class's images in "
            f"{folder}/<class name>/ (data=image_folder)")
    files: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        found = sorted(p for p in class_dir.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not found:
            raise DatasetNotFoundError(
                f"{class_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    return files, np.asarray(labels, dtype=np.int64), tuple(d.name for d in class_dirs)


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
        rest, y_rest, kept_names = _keep_classes(labels, names, classes)
        test, y_test, _ = _keep_classes(test_labels, names, classes)
        rest_files, test_files = [files[i] for i in rest], [test_files[i] for i in test]
    else:
        files, labels, names = scan_class_folders(folder)
        kept, y_kept, kept_names = _keep_classes(labels, names, classes)
        rest_idx, test_idx = split_off_test(y_kept, test_fraction)
        rest_files = [files[kept[i]] for i in rest_idx]
        test_files = [files[kept[i]] for i in test_idx]
        y_rest, y_test = y_kept[rest_idx], y_kept[test_idx]
    return _make_splits(rest_files, y_rest, test_files, y_test, n_train=n_train, n_val=n_val,
                        seed=seed, class_names=kept_names, source=folder, shape=shape)


# -- scikit-learn's digits -----------------------------------------------------------------------


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
    kept, y_kept, kept_names = _keep_classes(labels, names, classes)
    rest_idx, test_idx = split_off_test(y_kept, test_fraction)
    return _make_splits(x[kept[rest_idx]], y_kept[rest_idx], x[kept[test_idx]],
                        y_kept[test_idx], n_train=n_train, n_val=n_val, seed=seed,
                        class_names=kept_names, source=source, shape=x.shape[1:])
