"""cnn.data.safe_pickle: batches re-saved by Python 3 at protocol 2 load; nothing else widens."""

import codecs
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest

from cnn.data import UnsafePickleError, load_cifar10, load_pickle

BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _plain_load(path: Path):
    # The shared data is trusted here; plain pickle gives an independent reading.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


@pytest.mark.data
@pytest.mark.parametrize("name", ["data_batch_1", "batches.meta"])
def test_batch_resaved_at_protocol_2_loads_equal(cifar_folder, tmp_path, name):
    original = _plain_load(cifar_folder / name)
    path = tmp_path / name
    # Python 3 writes every bytes object at protocol 2 as _codecs.encode(text, "latin1").
    path.write_bytes(pickle.dumps(original, protocol=2))
    loaded = load_pickle(path)
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == value.dtype
        else:
            assert loaded[key] == value, key


@pytest.mark.data
def test_whole_dataset_resaved_at_protocol_2_loads_equal(cifar10, cifar_folder, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in BATCH_FILES:
        (folder / name).write_bytes(pickle.dumps(_plain_load(cifar_folder / name), protocol=2))
    data = load_cifar10(folder)
    np.testing.assert_array_equal(data.x_train, cifar10.x_train)
    np.testing.assert_array_equal(data.y_test, cifar10.y_test)
    assert data.class_names == cifar10.class_names


class _Reduces:
    """Pickles as a call of `func(*args)`: what a tampered file would ask for."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_protocol_2_pickle_calling_os_system_is_still_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    command = f"touch {shlex.quote(str(marker))}"
    path.write_bytes(pickle.dumps({b"data": _Reduces(os.system, command)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"\.system'"):
        load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (_Reduces(codecs.decode, "x", "latin1"), r"_codecs.decode'|codecs.decode'"),
        (_Reduces(codecs.lookup, "latin1"), r"codecs.lookup'"),
        (_Reduces(codecs.encode, "eA==", "base64"), r"'base64'"),
        (_Reduces(codecs.encode, b"x", "latin1"), r"text"),
    ],
    ids=["other-codecs-name", "codecs-module", "other-encoding", "non-text"],
)
def test_only_latin1_encoding_of_text_is_allowed(tmp_path, payload, refused):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": payload}, protocol=2))
    with pytest.raises(UnsafePickleError, match=refused) as excinfo:
        load_pickle(path)
    assert str(path) in str(excinfo.value)
