"""The full-size CIFAR-10 (5 x 10,000 + 10,000 images, with `filenames`): a stand-in made
from the real subset (tests/full_cifar.py) loads from its folder and its archive, splits
up to all 50,000 images, and trains an epoch with the images kept as uint8."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn.data import load_cifar10, prepare_cifar10, stratified_split

sys.path.insert(0, str(Path(__file__).parent))
from full_cifar import FOLDER, write_full_cifar  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_BYTES = 50_000 * 32 * 32 * 3  # the training images as uint8: 147 MiB

# slow: it makes and loads a 60,000-image stand-in (186 MB, and its archive), and one
# test trains an epoch over all 50,000 images.
pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="session")
def full_root(cifar_folder, tmp_path_factory) -> Path:
    """The stand-in's folder and archive, made once per session (about 10 s)."""
    out = tmp_path_factory.mktemp("full-cifar10")
    write_full_cifar(cifar_folder, out, compresslevel=1)  # fast gzip: only the format matters
    return out


@pytest.fixture(scope="session")
def full(full_root):
    return load_cifar10(full_root)


def _raw(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def test_every_official_file_and_key_is_there(full_root):
    folder = full_root / FOLDER
    for name, label in [(f"data_batch_{i}", f"training batch {i} of 5") for i in range(1, 6)] + [
            ("test_batch", "testing batch 1 of 1")]:
        raw = (folder / name).read_bytes()
        assert raw[:2] == b"\x80\x02"  # protocol 2, as the official files
        assert b"_codecs" not in raw[:200]  # bytes as Python 2 strings, not Python 3's encode
        batch = pickle.loads(raw, encoding="bytes")
        assert list(batch) == [b"batch_label", b"labels", b"data", b"filenames"]
        assert batch[b"batch_label"] == label.encode()
        assert batch[b"data"].shape == (10_000, 3072) and batch[b"data"].dtype == np.uint8
        assert len(batch[b"labels"]) == len(batch[b"filenames"]) == 10_000
        assert all(isinstance(f, bytes) and f.endswith(b".png") for f in batch[b"filenames"])
    meta = _raw(folder / "batches.meta")
    assert meta[b"num_cases_per_batch"] == 10_000 and len(meta[b"label_names"]) == 10


def test_all_60000_images_load_and_filenames_are_ignored(full, full_root, cifar10):
    assert full.x_train.shape == (50_000, 32, 32, 3) and full.x_test.shape == (10_000, 32, 32, 3)
    assert full.x_train.dtype == np.uint8 and full.x_train.flags.c_contiguous
    assert full.class_names == cifar10.class_names
    # cycle 0 is the subset itself, in order; later cycles are altered copies
    n = len(cifar10.x_train)
    np.testing.assert_array_equal(full.x_train[:n], cifar10.x_train)
    np.testing.assert_array_equal(full.y_train, np.resize(cifar10.y_train, 50_000))
    np.testing.assert_array_equal(full.x_test[: len(cifar10.x_test)], cifar10.x_test)
    assert not np.array_equal(full.x_train[n : 2 * n], cifar10.x_train)
    # the class balance is the subset's, ten times over
    assert np.bincount(full.y_train, minlength=10).min() > 4000


def test_the_archive_alone_loads_the_same_images(full, full_root, tmp_path):
    only_archive = tmp_path / "root"
    only_archive.mkdir()
    os.link(full_root / "cifar-10-python.tar.gz", only_archive / "cifar-10-python.tar.gz")
    again = load_cifar10(only_archive)
    assert again.source == only_archive / FOLDER
    np.testing.assert_array_equal(again.x_train, full.x_train)
    np.testing.assert_array_equal(again.y_test, full.y_test)


@pytest.mark.parametrize(("n_train", "n_val"), [(None, 0), (50_000, 0), (None, 5000)])
def test_splits_reach_all_50000_images(full, full_root, n_train, n_val):
    splits = prepare_cifar10(full_root, n_train=n_train, n_val=n_val, seed=0)
    assert len(splits.x_train) + len(splits.x_val) == 50_000 and len(splits.x_val) == n_val
    assert len(splits.x_test) == 10_000
    # the validation split is stratified: 500 of each class
    assert n_val == 0 or np.bincount(splits.y_val).tolist() == [n_val // 10] * 10
    # the rows are the chosen images, though the training ones reuse the loaded memory
    train_idx, val_idx = stratified_split(full.y_train, n_train, n_val, seed=0)
    np.testing.assert_array_equal(splits.x_train, full.x_train[train_idx])
    np.testing.assert_array_equal(splits.x_val, full.x_train[val_idx])
    np.testing.assert_array_equal(splits.y_train, full.y_train[train_idx])
    assert splits.x_train.dtype == np.uint8 and not splits.x_train.flags.writeable


_EPOCH = """
import json, resource, sys, time
from cnn.training import fit
from experiments.config import compose_config
from experiments.runs.build import build_run
from experiments.runtime.threads import chunk_threads

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

before = peak()
run = build_run(compose_config(sys.argv[1:]))
digest = run.splits.digest()
built = peak()
start = time.perf_counter()
with chunk_threads():
    history = fit(run.net, run.loss_fn, run.optimizer, run.schedule, run.train_batches,
                  run.epochs, val_batches=run.val_batches)
print(json.dumps(dict(before=before, built=built, peak=peak(),
                      seconds=time.perf_counter() - start,
                      n_train=len(run.splits.x_train), n_val=len(run.splits.x_val),
                      n_test=len(run.splits.x_test), steps=run.steps_per_epoch,
                      digest=digest, history=history)))
"""


def test_one_epoch_on_all_50000_images_keeps_them_uint8(full_root):
    # A fresh process, so that its peak RSS is this run's: the seed model, one epoch over
    # every training image in batches of 250 (200 steps), normalised and augmented.
    overrides = [f"data.root={full_root}", "experiment=seed_full", "data.n_val=0",
                 "trainer.epochs=1", "trainer.batch_size=250", "trainer.seed=3"]
    done = subprocess.run([sys.executable, "-c", _EPOCH, *overrides], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["n_train"], result["n_val"], result["n_test"]) == (50_000, 0, 10_000)
    assert result["steps"] == 200
    epoch = result["history"][0]
    assert np.isfinite(epoch["train_loss"]) and epoch["train_acc"] > 0.15  # it learns
    # Loading, splitting, fitting the normaliser and the digest hold the 60,000 images as
    # uint8 (176 MB) plus one batch file in flight; a float32 copy of the training set
    # alone would add 614 MB (float64: 1.2 GB).
    loading = result["built"] - result["before"]
    assert loading < 2 * TRAIN_BYTES, f"loading grew the peak by {loading / 2**20:.0f} MB"
    # The epoch adds a step's activations and gradients (batch 250: tens of MB), never
    # the set as floats.
    epoch_growth = result["peak"] - result["built"]
    assert epoch_growth < 2 * TRAIN_BYTES, f"an epoch grew it by {epoch_growth / 2**20:.0f} MB"
