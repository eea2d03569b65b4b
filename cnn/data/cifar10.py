"""Finding, unpacking and reading CIFAR-10 in its official Python-pickle layout, and
choosing one run's images from it (`prepare_cifar10`).

The data root may hold the extracted `cifar-10-batches-py/` folder, the official
`cifar-10-python.tar.gz`, or be the `cifar-10-batches-py/` folder itself. Images are
returned channels-last, (N, 32, 32, 3) uint8, converted once here; the batch files
themselves are read by cnn.data.batch_files.
"""

import errno
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data.batch_files import NUM_CLASSES, read_class_names, read_split
from cnn.data.download import download as download_file
from cnn.data.errors import DatasetNotFoundError
from cnn.data.extract import extract_tar
from cnn.data.splits import Splits, check_classes, label_map, stratified_split

logger = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"


@dataclass(frozen=True, eq=False)
class Cifar10:
    """The whole CIFAR-10 dataset as read from disk; arrays are read-only.

    x_train: uint8 (N_train, 32, 32, 3); y_train: int64 (N_train,) in 0..9.
    x_test: uint8 (N_test, 32, 32, 3); y_test: int64 (N_test,) in 0..9.
    class_names: the 10 names from batches.meta, indexed by label.
    source: the cifar-10-batches-py folder the batches were read from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: Path


def resolve_root(root: str | os.PathLike | None) -> Path:
    """Return the data root: `root` if given, else $CIFAR10_ROOT, else ./data; absolute.

    An empty string counts as not given, so an unset config value falls through.
    """
    chosen = root if root is not None and str(root) != "" else os.environ.get("CIFAR10_ROOT")
    if not chosen:
        chosen = "data"
    # abspath rather than resolve(): normalise `..` without replacing symlinks in messages.
    return Path(os.path.abspath(Path(chosen).expanduser()))


def _not_found_message(root: Path, url: str) -> str:
    return (
        f"CIFAR-10 not found: searched {root} for a {FOLDER_NAME}/ folder or {ARCHIVE_NAME} "
        "(or batch files directly in it). Set the environment variable CIFAR10_ROOT or the "
        "config value data.root to the folder that holds them, or let it be downloaded "
        f"({url}, about 170 MB, into {root}): data.download=true (harness) / "
        "download=True (cnn.data.prepare_cifar10 or load_cifar10)."
    )


def _is_writable_dir(path: Path) -> bool:
    # os.access alone says yes to root for a folder whose mode marks it read-only; such a
    # folder is meant to be left alone, so the mode's write bits are checked as well.
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    return stat.S_ISDIR(mode) and bool(mode & write_bits) and os.access(path, os.W_OK | os.X_OK)


def _cache_dir_for(archive: Path) -> Path:
    """A per-archive folder under the user's cache (or the temp dir) to extract into."""
    stat_result = archive.stat()
    key = f"{archive.resolve()}|{stat_result.st_size}|{stat_result.st_mtime_ns}"
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    xdg = os.environ.get("XDG_CACHE_HOME")
    bases = [Path(xdg) if xdg else Path.home() / ".cache", Path(tempfile.gettempdir())]
    for base in bases:
        folder = base / "numpy-cnn-lab" / "cifar10" / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if _is_writable_dir(folder):
            return folder
    raise PermissionError(
        f"cannot extract {archive}: its folder is read-only and neither {bases[0]} nor "
        f"{bases[1]} is writable. Extract it by hand and point CIFAR10_ROOT or data.root "
        "at the result."
    )


def _extract_into(archive: Path, target: Path) -> Path:
    try:
        # Only the batches folder: anything else in the archive would litter the data root.
        extract_tar(archive, target, only=FOLDER_NAME)
    except FileExistsError:
        # Another process extracting the same archive won the race; use its result.
        if not (target / FOLDER_NAME).is_dir():
            raise
    return target / FOLDER_NAME


def _extract_to_cache(archive: Path) -> Path:
    target = _cache_dir_for(archive)
    if (target / FOLDER_NAME).is_dir():
        return target / FOLDER_NAME  # extracted by an earlier run
    logger.warning(
        "%s is read-only; extracting %s into %s instead", archive.parent, archive.name, target
    )
    return _extract_into(archive, target)


def _extract(archive: Path) -> Path:
    """Extract `archive` beside itself, or into a cache folder if that is read-only.

    Returns the extracted cifar-10-batches-py folder; an archive without it raises
    CorruptDatasetError (from extract_tar) and leaves both places as they were.
    """
    if not _is_writable_dir(archive.parent):
        folder = _extract_to_cache(archive)
    else:
        try:
            folder = _extract_into(archive, archive.parent)
        except OSError as e:
            # A read-only mount or an ACL can refuse writes that the mode bits allow.
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            folder = _extract_to_cache(archive)
    return folder


def _find_folder(root: Path, *, download: bool, url: str, md5: str) -> Path:
    """Return the folder holding the batch files, extracting or downloading if needed."""
    if any((root / name).is_file() for name in (META_FILE, TEST_FILE, *TRAIN_FILES)):
        return root  # the root is the cifar-10-batches-py folder itself
    if (root / FOLDER_NAME).is_dir():
        return root / FOLDER_NAME
    if (root / ARCHIVE_NAME).is_file():
        return _extract(root / ARCHIVE_NAME)
    if not download:
        raise DatasetNotFoundError(_not_found_message(root, url))

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PermissionError(
            f"cannot create the data root {root} to download CIFAR-10 into ({e}). Set "
            "CIFAR10_ROOT or data.root to a writable folder."
        ) from e
    if not _is_writable_dir(root):
        raise PermissionError(
            f"the data root {root} is read-only, so CIFAR-10 cannot be downloaded into it. "
            "Set CIFAR10_ROOT or data.root to a writable folder."
        )
    logger.info("downloading CIFAR-10 from %s into %s", url, root)
    archive = download_file(url, root / ARCHIVE_NAME, md5)
    return _extract(archive)


def load_cifar10(
    root: str | os.PathLike | None,
    *,
    download: bool = False,
    url: str = OFFICIAL_URL,
    md5: str = OFFICIAL_MD5,
) -> Cifar10:
    """Load all of CIFAR-10 from `root` (see resolve_root), as channels-last uint8 images.

    `root` may hold the `cifar-10-batches-py/` folder or `cifar-10-python.tar.gz`, or be the
    folder itself. An archive is extracted beside itself, or into a cache folder under
    ~/.cache (or the temp dir) when its folder is read-only. With `download=True` and
    nothing found, the archive is downloaded from `url`, checked against `md5`, and
    extracted into `root`.

    Returns a Cifar10 with x_train (N, 32, 32, 3) uint8, y_train (N,) int64, likewise
    x_test/y_test; N is 50,000/10,000 for the official data.

    Raises:
        DatasetNotFoundError: nothing found and `download` is False.
        CorruptDatasetError: a file is missing, truncated or holds unexpected values
            (UnsafePickleError, a subclass, if a pickle asks for a forbidden global).
        DownloadError, ChecksumError: the download failed.
    """
    folder = _find_folder(resolve_root(root), download=download, url=url, md5=md5)
    class_names = read_class_names(folder / META_FILE)
    x_train, y_train = read_split(folder, TRAIN_FILES)
    x_test, y_test = read_split(folder, (TEST_FILE,))
    return Cifar10(x_train, y_train, x_test, y_test, class_names, folder)


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
