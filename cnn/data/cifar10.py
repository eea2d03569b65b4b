"""Finding, unpacking and reading CIFAR-10 in its official Python-pickle layout.

The data root may hold the extracted `cifar-10-batches-py/` folder, the official
`cifar-10-python.tar.gz`, or be the `cifar-10-batches-py/` folder itself. Images are
returned channels-last, (N, 32, 32, 3) uint8, converted once here.
"""

import errno
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn.data.download import download as download_file
from cnn.data.errors import CorruptDatasetError, DatasetNotFoundError, UnsafePickleError
from cnn.data.extract import extract_tar
from cnn.data.safe_pickle import load_pickle

logger = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
_ROW_LENGTH = 32 * 32 * 3


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


def _read_class_names(path: Path) -> tuple[str, ...]:
    meta = _read_pickle(path)
    names = _get(meta, "label_names", path)
    if not isinstance(names, list | tuple) or len(names) != NUM_CLASSES:
        raise CorruptDatasetError(
            f"{path}: 'label_names' should list {NUM_CLASSES} names, found {names!r:.200}. "
            f"Delete {path.parent} and extract or download CIFAR-10 again."
        )
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _read_split(folder: Path, files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
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
    class_names = _read_class_names(folder / META_FILE)
    x_train, y_train = _read_split(folder, TRAIN_FILES)
    x_test, y_test = _read_split(folder, (TEST_FILE,))
    return Cifar10(x_train, y_train, x_test, y_test, class_names, folder)
