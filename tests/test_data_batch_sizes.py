"""Crafted sizes in a CIFAR-10 batch file (issue 27): an array the pickle builds must be
backed by the file's bytes, and its size match the labels and the format, before the
dataset allocates anything; each refusal names the file."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from cnn.data import CorruptDatasetError, UnsafePickleError, load_pickle
from cnn.data.batch_files import read_split


class _Reduces:
    """Pickles as a call of `func(*args)`: what a tampered file would ask for."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _write(path, data, labels) -> None:
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=2))


@pytest.mark.parametrize("images", [100_000, 2_000_000])
def test_an_array_repeating_one_byte_is_refused_naming_the_file(tmp_path, images):
    path = tmp_path / "data_batch_1"
    # A few hundred bytes that build (images, 3072) zeros from one byte, labelled 0.
    data = _Reduces(np.ndarray, (images, 3072), "u1", b"\x00", 0, (0, 0))
    labels = _Reduces(np.ndarray, (images,), "i8", b"\x00" * 8, 0, (0,))
    _write(path, data, labels)
    assert path.stat().st_size < 400
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="needs .* bytes but the file gives it 1") \
                as info:
            read_split(tmp_path, ("data_batch_1",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value) and peak < 16 * 2**20


def test_an_array_with_no_buffer_or_strides_of_its_own_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_Reduces(np.ndarray, (2_000_000, 3072), "u1"), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"needs 6,144,000,000 bytes .* gives it 0"):
        load_pickle(path)
    # Enough bytes, but a zero stride repeats the first row in every row.
    path.write_bytes(pickle.dumps(
        _Reduces(np.ndarray, (2, 3072), "u1", bytes(2 * 3072), 0, (0, 1)), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"strides \(0, 1\) \(contiguous ones are "):
        load_pickle(path)


def test_an_honest_direct_ndarray_call_still_loads(tmp_path):
    path = tmp_path / "data_batch_1"
    pixels = np.arange(2 * 3072, dtype=np.uint8).tobytes()
    _write(path, _Reduces(np.ndarray, (2, 3072), "u1", pixels), [3, 4])
    x, y = read_split(tmp_path, ("data_batch_1",))
    assert x.shape == (2, 32, 32, 3) and list(y) == [3, 4]
    assert x[0, 0, 0, 0] == 0 and x[0, 0, 1, 0] == 1  # channel-major rows, red first


def test_sizes_must_match_the_labels_and_the_format(tmp_path):
    path = tmp_path / "data_batch_1"
    _write(path, np.zeros((3, 3072), np.uint8), [0, 1])
    with pytest.raises(CorruptDatasetError, match="3 images but 2 labels") as info:
        read_split(tmp_path, ("data_batch_1",))
    assert str(path) in str(info.value)
    _write(path, np.zeros((2, 1024), np.uint8), [0, 1])
    with pytest.raises(CorruptDatasetError, match=r"shape \(N, 3072\)"):
        read_split(tmp_path, ("data_batch_1",))
