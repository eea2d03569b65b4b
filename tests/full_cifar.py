"""A full-size CIFAR-10 stand-in in the official format, built from the real subset.

The official archive holds five training batches of 10,000 images and a test batch of
10,000. Each batch is a dict pickled by Python 2 at protocol 2, with the keys
`batch_label`, `labels`, `data` (uint8 (10000, 3072), channel-major rows) and `filenames`;
`batches.meta` names the classes. This builds the same files, and the `.tar.gz` with one
top-level folder `cifar-10-batches-py/`, by cycling the subset's real images: cycle 0 is
the images as they are, each later cycle flips and/or shifts them by a pixel or two
(wrapping round), so that no two images of the stand-in are identical copies.

    python tests/full_cifar.py OUT [--source ROOT] [--compresslevel 6] [--no-archive]

writes OUT/cifar-10-batches-py/ and OUT/cifar-10-python.tar.gz (ROOT defaults to
$CIFAR10_ROOT). Only this generator is committed; the data is made where it is needed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = 5
PER_BATCH = 10_000
# (flip, shift down, shift right) of each cycle after the first; ten cycles of the
# subset's 5,085 training images cover the 50,000 the official batches hold.
_VARIANTS = [(False, 0, 0), (True, 0, 0), (False, 1, 0), (True, 0, 1), (False, 0, -1),
             (True, -1, 0), (False, 1, 1), (True, -1, -1), (False, 2, 0), (True, 0, 2),
             (False, -2, 0), (True, 0, -2)]


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: bytes as (SHORT_)BINSTRING, not `_codecs.encode`,
    and NumPy's globals under `numpy.core` (the names the official files carry)."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _dump(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def _read(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def variant(images: np.ndarray, cycle: int) -> np.ndarray:
    """Images (N, 3, 32, 32) as cycle `cycle` shows them: flipped and/or shifted."""
    flip, down, right = _VARIANTS[cycle % len(_VARIANTS)]
    out = images[..., ::-1] if flip else images
    return np.roll(out, (down, right), axis=(2, 3))


def cycled(data: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` rows (count, 3072) cycling `data` (N, 3072) through the variants, and the
    source row of each."""
    n = len(data)
    images = data.reshape(n, 3, 32, 32)
    out = np.empty((count, data.shape[1]), dtype=np.uint8)
    for cycle, start in enumerate(range(0, count, n)):
        stop = min(start + n, count)
        out[start:stop] = variant(images[: stop - start], cycle).reshape(stop - start, -1)
    return out, np.arange(count) % n


def _batch(label: str, data: np.ndarray, labels: np.ndarray, names: list[bytes],
           first: int) -> dict:
    filenames = [b"%s_s_%06d.png" % (names[y], first + i) for i, y in enumerate(labels)]
    # The official key order, with Python 2 str keys (bytes when read by Python 3).
    return {b"batch_label": label.encode(), b"labels": [int(y) for y in labels],
            b"data": data, b"filenames": filenames}


def write_full_cifar(source: str | os.PathLike, out: str | os.PathLike, *,
                     archive: bool = True, compresslevel: int = 6) -> Path:
    """Write a full-size stand-in (5 x 10,000 training, 10,000 test images) under `out`.

    source: a folder holding the subset's `cifar-10-batches-py/` (or that folder itself).
    Returns the `cifar-10-batches-py` folder written; with `archive`, `out` also holds
    `cifar-10-python.tar.gz` packing it (gzip at `compresslevel`).
    """
    src = Path(source)
    src = src / FOLDER if (src / FOLDER).is_dir() else src
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read(src / "batches.meta")
    names = list(meta[b"label_names"])

    parts = [_read(src / f"data_batch_{i}") for i in range(1, TRAIN_BATCHES + 1)]
    train = np.concatenate([p[b"data"] for p in parts])
    train_labels = np.concatenate([p[b"labels"] for p in parts])
    data, rows = cycled(train, TRAIN_BATCHES * PER_BATCH)
    for b in range(TRAIN_BATCHES):
        part = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        batch = _batch(f"training batch {b + 1} of {TRAIN_BATCHES}", data[part],
                       train_labels[rows[part]], names, b * PER_BATCH)
        _dump(batch, folder / f"data_batch_{b + 1}")
    del data, train

    test = _read(src / "test_batch")
    data, rows = cycled(test[b"data"], PER_BATCH)
    test_labels = np.asarray(test[b"labels"])[rows]
    _dump(_batch("testing batch 1 of 1", data, test_labels, names, 0), folder / "test_batch")
    _dump({b"num_cases_per_batch": PER_BATCH, b"label_names": names,
           b"num_vis": data.shape[1]}, folder / "batches.meta")

    if archive:
        with tarfile.open(Path(out) / ARCHIVE, "w:gz", compresslevel=compresslevel) as tar:
            tar.add(folder, arcname=FOLDER)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to write cifar-10-batches-py/ and the archive into")
    parser.add_argument("--source", default=os.environ.get("CIFAR10_ROOT"),
                        help="the subset's data root (default: $CIFAR10_ROOT)")
    parser.add_argument("--compresslevel", type=int, default=6)
    parser.add_argument("--no-archive", action="store_true", help="skip the .tar.gz")
    args = parser.parse_args(argv)
    if not args.source:
        parser.error("give --source or set CIFAR10_ROOT")
    folder = write_full_cifar(args.source, args.out, archive=not args.no_archive,
                              compresslevel=args.compresslevel)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
