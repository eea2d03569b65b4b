"""Extracting cifar-10-python.tar.gz into the data root: only cifar-10-batches-py/ lands there,
and an archive without it leaves the root as it was, failing the same way every time."""

import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnn.data import CorruptDatasetError, extract_tar, load_cifar10

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"


def _tar(path: Path, entries: dict[str, bytes | Path]) -> Path:
    """A .tar.gz of files: name -> content, or a file on disk to add under that name."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, content in entries.items():
            if isinstance(content, Path):
                tar.add(content, arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def flat_archive(cifar_folder, tmp_path) -> Path:
    """Batch files packed without their folder, as `tar czf x.tgz *` inside it would."""
    root = tmp_path / "root"
    root.mkdir()
    return _tar(root / ARCHIVE, {"readme.txt": b"packed wrongly\n",
                                 "data_batch_1": cifar_folder / "data_batch_1"})


@pytest.mark.data
def test_archive_without_the_folder_leaves_the_root_clean(flat_archive):
    root = flat_archive.parent
    messages = []
    for _ in range(2):  # the second attempt fails exactly like the first
        with pytest.raises(CorruptDatasetError) as excinfo:
            load_cifar10(root)
        messages.append(str(excinfo.value))
        assert os.listdir(root) == [ARCHIVE]  # no extracted file, no staging folder
    assert messages[0] == messages[1]
    assert str(flat_archive) in messages[0] and f"{FOLDER}/" in messages[0]
    assert "data_batch_1" in messages[0]  # says what it holds instead


def test_extract_tar_with_only_writes_nothing_when_the_folder_is_missing(tmp_path):
    archive = _tar(tmp_path / "x.tar.gz", {"other/a.txt": b"a", f"{FOLDER}x/b": b"b"})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(CorruptDatasetError, match=re.escape(f"{archive}")) as excinfo:
        extract_tar(archive, dest, only=FOLDER)
    assert f"{FOLDER}/" in str(excinfo.value) and "other" in str(excinfo.value)
    assert os.listdir(dest) == []


def test_a_file_named_like_the_folder_is_not_the_folder(tmp_path):
    archive = _tar(tmp_path / "x.tar.gz", {FOLDER: b"not a folder"})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(CorruptDatasetError, match=f"{FOLDER}/"):
        extract_tar(archive, dest, only=FOLDER)
    assert os.listdir(dest) == []


@pytest.mark.data
def test_only_the_batches_folder_is_moved_into_the_root(cifar10, cifar_folder, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    entries: dict[str, bytes | Path] = {"stray.txt": b"left out", "extra/x": b"left out"}
    entries |= {f"{FOLDER}/{p.name}": p for p in sorted(cifar_folder.iterdir())}
    _tar(root / ARCHIVE, entries)
    data = load_cifar10(root)
    assert sorted(os.listdir(root)) == sorted([ARCHIVE, FOLDER])
    np.testing.assert_array_equal(data.x_test, cifar10.x_test)


@pytest.mark.data
def test_good_archive_extracts_into_the_root(cifar10, cifar_archive, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(cifar_archive, root / ARCHIVE)
    data = load_cifar10(root)
    assert data.source == root / FOLDER
    assert sorted(os.listdir(root)) == sorted([ARCHIVE, FOLDER])
    np.testing.assert_array_equal(data.x_train, cifar10.x_train)
    assert load_cifar10(root).source == root / FOLDER  # the next run reads the folder


@pytest.mark.data
def test_truncated_archive_in_the_root_is_named(cifar_archive, tmp_path):
    content = cifar_archive.read_bytes()
    archive = tmp_path / ARCHIVE
    archive.write_bytes(content[: len(content) // 3])
    with pytest.raises(CorruptDatasetError, match=re.escape(str(archive))):
        load_cifar10(tmp_path)
    assert os.listdir(tmp_path) == [ARCHIVE]
