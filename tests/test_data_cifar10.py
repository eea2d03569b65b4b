"""Reading CIFAR-10 from disk: layouts, channels-last conversion, safety and clear errors."""

import errno
import os
import pickle
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnn.data import (
    CorruptDatasetError,
    DatasetNotFoundError,
    UnsafePickleError,
    load_cifar10,
    load_pickle,
    resolve_root,
)

BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _linked_copy(folder: Path, dest: Path) -> Path:
    """A copy of the batch folder made of symlinks: cheap, and each file can be replaced."""
    dest.mkdir(parents=True)
    for name in BATCH_FILES:
        os.symlink(folder / name, dest / name)
    return dest


def _replace(path: Path, content: bytes) -> None:
    path.unlink()  # drops the symlink, never touches the shared original
    path.write_bytes(content)


def _raw_batch(path: Path) -> dict:
    # The shared data is trusted here; plain pickle gives an independent reading.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _batch_bytes(data, labels, **extra) -> bytes:
    batch = {b"batch_label": b"crafted", b"labels": labels, b"data": data, **extra}
    return pickle.dumps(batch, protocol=4)


# --- real data ----------------------------------------------------------------------------


@pytest.mark.data
def test_shapes_dtypes_and_sizes(cifar10, cifar_folder):
    per_batch = len(_raw_batch(cifar_folder / "data_batch_1")[b"labels"])
    assert per_batch in (1017, 10000)  # the shared subset or the official data
    assert cifar10.x_train.shape == (5 * per_batch, 32, 32, 3)
    assert cifar10.x_test.shape == (per_batch, 32, 32, 3)
    assert cifar10.x_train.dtype == np.uint8 and cifar10.x_test.dtype == np.uint8
    assert cifar10.y_train.shape == (5 * per_batch,) and cifar10.y_test.shape == (per_batch,)
    assert cifar10.y_train.dtype == np.int64 and cifar10.y_test.dtype == np.int64
    assert set(np.unique(cifar10.y_train)) == set(range(10))
    assert cifar10.x_train.flags.c_contiguous


@pytest.mark.data
def test_first_test_labels_and_class_names(cifar10):
    assert cifar10.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    names = "airplane automobile bird cat deer dog frog horse ship truck"
    assert cifar10.class_names == tuple(names.split())


@pytest.mark.data
def test_channel_major_rows_become_channels_last(cifar10, cifar_folder):
    raw = _raw_batch(cifar_folder / "data_batch_2")[b"data"]
    offset = len(raw)  # data_batch_2 follows data_batch_1, which has the same size
    rng = np.random.default_rng(0)
    for _ in range(200):
        i, r, c, ch = rng.integers(len(raw)), rng.integers(32), rng.integers(32), rng.integers(3)
        # row[0:1024] is the red plane, row-major; then green, then blue.
        assert cifar10.x_train[offset + i, r, c, ch] == raw[i, ch * 1024 + r * 32 + c]
    test_raw = _raw_batch(cifar_folder / "test_batch")[b"data"]
    assert cifar10.x_test[0, 0, 0].tolist() == [
        test_raw[0, 0],
        test_raw[0, 1024],
        test_raw[0, 2048],
    ]
    assert cifar10.x_test[0, 31, 31].tolist() == test_raw[0, [1023, 2047, 3071]].tolist()


@pytest.mark.data
def test_arrays_are_read_only(cifar10):
    with pytest.raises(ValueError):
        cifar10.x_train[0, 0, 0, 0] = 1


@pytest.mark.data
def test_batches_of_different_sizes_load_in_order(cifar10, cifar_folder, tmp_path):
    # The loader sizes its array from the first batch; smaller and larger ones still fit.
    folder = _linked_copy(cifar_folder, tmp_path / "cifar-10-batches-py")
    sizes = [5, 400, 1017, 2000, 3]
    pool = np.concatenate([_raw_batch(cifar_folder / f"data_batch_{i}")[b"data"]
                           for i in range(1, 6)])
    rows = np.arange(sum(sizes)) % len(pool)
    labels = cifar10.y_train[rows]
    start = 0
    for i, size in enumerate(sizes, start=1):
        part = slice(start, start + size)
        _replace(folder / f"data_batch_{i}", _batch_bytes(pool[rows[part]], labels[part].tolist()))
        start += size
    data = load_cifar10(folder)
    np.testing.assert_array_equal(data.x_train, cifar10.x_train[rows])
    np.testing.assert_array_equal(data.y_train, labels)
    assert data.x_train.flags.c_contiguous and not data.x_train.flags.writeable


@pytest.mark.data
def test_root_may_be_the_batches_folder_itself(cifar10, cifar_folder):
    data = load_cifar10(cifar_folder)
    assert data.source == cifar_folder
    np.testing.assert_array_equal(data.y_train, cifar10.y_train)


@pytest.mark.data
def test_loads_from_the_archive_alone(cifar10, cifar_archive, tmp_path):
    shutil.copy(cifar_archive, tmp_path / "cifar-10-python.tar.gz")
    data = load_cifar10(tmp_path)
    assert data.source == tmp_path / "cifar-10-batches-py"
    np.testing.assert_array_equal(data.x_train, cifar10.x_train)
    np.testing.assert_array_equal(data.y_test, cifar10.y_test)
    # Only the extracted folder is added: no staging folder is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
    ]
    assert load_cifar10(tmp_path).source == data.source  # the second load reuses it


@pytest.mark.data
def test_read_only_root_extracts_to_user_cache(cifar10, cifar_archive, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    root = tmp_path / "read-only"
    root.mkdir()
    shutil.copy(cifar_archive, root / "cifar-10-python.tar.gz")
    root.chmod(0o555)
    try:
        data = load_cifar10(root)
        again = load_cifar10(root)
        assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]
    finally:
        root.chmod(0o755)
    assert data.source.is_relative_to(home / ".cache")
    assert again.source == data.source
    np.testing.assert_array_equal(data.x_test, cifar10.x_test)


@pytest.mark.data
def test_read_only_mount_falls_back_to_user_cache(cifar_archive, tmp_path, monkeypatch):
    # A read-only mount keeps its write bits, so only the failed write reveals it.
    import cnn.data.cifar10 as cifar10_module

    real_extract = cifar10_module.extract_tar

    def extract(archive, dest, **options):
        if Path(dest) == root:
            raise OSError(errno.EROFS, "Read-only file system", str(dest))
        return real_extract(archive, dest, **options)

    monkeypatch.setattr(cifar10_module, "extract_tar", extract)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "mounted"
    root.mkdir()
    shutil.copy(cifar_archive, root / "cifar-10-python.tar.gz")
    data = load_cifar10(root)
    assert data.source.is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]


# --- where the data is looked for ---------------------------------------------------------


def test_resolve_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CIFAR10_ROOT", raising=False)
    assert resolve_root(None) == tmp_path / "data"
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path / "from-env"))
    assert resolve_root(None) == tmp_path / "from-env"
    assert resolve_root("") == tmp_path / "from-env"
    assert resolve_root("relative/../cfg") == tmp_path / "cfg"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_root("~/cifar") == tmp_path / "home" / "cifar"


def test_missing_data_names_the_path_and_both_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_ROOT", raising=False)
    empty = tmp_path / "nothing-here"
    with pytest.raises(DatasetNotFoundError) as excinfo:
        load_cifar10(empty)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    for expected in (str(empty), "CIFAR10_ROOT", "data.root", "download=True"):
        assert expected in message
    # Both ways to ask for the download: the harness key and the library argument.
    assert "data.download=true (harness)" in message
    assert "download=True (cnn.data.prepare_cifar10" in message
    assert not empty.exists()  # looking does not create anything


# --- damaged files ------------------------------------------------------------------------


@pytest.fixture
def broken_copy(cifar_folder, tmp_path) -> Path:
    return _linked_copy(cifar_folder, tmp_path / "cifar-10-batches-py")


@pytest.mark.data
@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
def test_truncated_file_is_named(broken_copy, name):
    content = (broken_copy / name).read_bytes()
    _replace(broken_copy / name, content[: len(content) // 2])
    pattern = re.escape(str(broken_copy / name)) + ".*truncated or corrupt"
    with pytest.raises(CorruptDatasetError, match=pattern):
        load_cifar10(broken_copy.parent)


@pytest.mark.data
def test_file_missing_its_last_byte_is_refused(broken_copy):
    content = (broken_copy / "data_batch_1").read_bytes()
    _replace(broken_copy / "data_batch_1", content[:-1])
    with pytest.raises(CorruptDatasetError, match="data_batch_1"):
        load_cifar10(broken_copy)


@pytest.mark.data
def test_missing_batch_is_named(broken_copy):
    (broken_copy / "data_batch_5").unlink()
    pattern = re.escape(str(broken_copy / "data_batch_5")) + " is missing"
    with pytest.raises(CorruptDatasetError, match=pattern):
        load_cifar10(broken_copy.parent)


@pytest.mark.data
@pytest.mark.parametrize("garbage", [b"this is not a pickle\n" * 100, bytes(range(256)) * 40])
def test_garbage_bytes_are_refused(broken_copy, garbage):
    _replace(broken_copy / "test_batch", garbage)
    with pytest.raises(CorruptDatasetError, match=re.escape(str(broken_copy / "test_batch"))):
        load_cifar10(broken_copy)


def _labels(n):
    return [i % 10 for i in range(n)]


@pytest.mark.data
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_batch_bytes(np.zeros((9, 3072), np.uint8), _labels(10)), "9 images but 10 labels"),
        (_batch_bytes(np.zeros((4, 3072), np.uint8), [0, 1, 10, 2]), "label 10 at index 2"),
        (_batch_bytes(np.zeros((2, 3072), np.uint8), [-1, 0]), "label -1 at index 0"),
        (_batch_bytes(np.zeros((2, 3072), np.float32), [0, 1]), "uint8 array, found float32"),
        (_batch_bytes(np.zeros((2, 3000), np.uint8), [0, 1]), r"shape \(N, 3072\)"),
        (_batch_bytes(np.zeros((2, 3072), np.uint8), [0.5, 1.0]), "flat list of integers"),
        (pickle.dumps({b"labels": [0]}, protocol=4), "key 'data' is missing"),
        (pickle.dumps([1, 2, 3], protocol=4), "holds a list"),
    ],
)
def test_unexpected_contents_are_refused(broken_copy, content, expected):
    _replace(broken_copy / "data_batch_4", content)
    with pytest.raises(CorruptDatasetError, match=expected) as excinfo:
        load_cifar10(broken_copy)
    assert str(broken_copy / "data_batch_4") in str(excinfo.value)


@pytest.mark.data
def test_str_keys_and_numpy_labels_are_accepted(broken_copy, cifar10):
    # A batch re-saved by Python 3 / NumPy 2 (str keys, labels as an array) still loads.
    raw = _raw_batch(broken_copy / "data_batch_1")
    resaved = {"batch_label": "resaved", "labels": np.array(raw[b"labels"]), "data": raw[b"data"]}
    _replace(broken_copy / "data_batch_1", pickle.dumps(resaved, protocol=5))
    data = load_cifar10(broken_copy)
    np.testing.assert_array_equal(data.x_train, cifar10.x_train)
    np.testing.assert_array_equal(data.y_train, cifar10.y_train)


# --- unpickling safety --------------------------------------------------------------------


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _OpensFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    ("payload_class", "global_name"), [(_RunsShell, "system"), (_OpensFile, "open")]
)
def test_malicious_pickle_is_refused_before_it_runs(tmp_path, payload_class, global_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    payload = pickle.dumps({"labels": [0], "data": payload_class(marker)}, protocol=2)
    path.write_bytes(payload)

    with pytest.raises(UnsafePickleError) as excinfo:
        load_pickle(path)
    message = str(excinfo.value)
    assert str(path) in message and f".{global_name}'" in message
    assert not marker.exists()

    # Through the dataset loader it is refused the same way (and counts as corrupt data).
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in BATCH_FILES:
        (folder / name).write_bytes(payload)
    with pytest.raises(CorruptDatasetError, match="refused to unpickle"):
        load_cifar10(folder)
    assert not marker.exists()

    # The payload is real: the standard unpickler does create the marker.
    created = pickle.loads(payload)["data"]
    assert marker.exists()
    if hasattr(created, "close"):  # the file object that the open() payload returned
        created.close()


def test_plain_numpy_pickles_are_allowed(tmp_path):
    path = tmp_path / "arrays.pkl"
    original = {"a": np.arange(6, dtype=np.uint8).reshape(2, 3), "s": np.int64(7)}
    # Protocol 2 from Python 3 stores bytes via `_codecs.encode`, allowed for latin1 only.
    for protocol in (2, 4, 5):
        path.write_bytes(pickle.dumps(original, protocol=protocol))
        loaded = load_pickle(path)
        np.testing.assert_array_equal(loaded["a"], original["a"])
        assert loaded["s"] == 7
