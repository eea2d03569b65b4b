"""Stratified, seeded, nested training/validation subsets and the Splits a run uses."""

import re
from pathlib import Path

import numpy as np
import pytest

from cnn.data import Splits, prepare_cifar10, stratified_split


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """10 classes of uneven size (450..549 images), in a shuffled order like CIFAR's."""
    rng = np.random.default_rng(123)
    sizes = rng.integers(450, 550, size=10)
    return rng.permutation(np.repeat(np.arange(10), sizes))


def _spread(labels: np.ndarray, idx: np.ndarray, classes=range(10)) -> int:
    counts = np.array([np.sum(labels[idx] == c) for c in classes])
    return int(counts.max() - counts.min())


@pytest.mark.parametrize("n_train", [0, 1, 10, 37, 100, 999, 2500])
@pytest.mark.parametrize("n_val", [0, 7, 500])
def test_both_splits_are_balanced_within_one_image(labels, n_train, n_val):
    train, val = stratified_split(labels, n_train, n_val, seed=0)
    assert len(train) == n_train and len(val) == n_val
    assert _spread(labels, train) <= 1 and _spread(labels, val) <= 1
    assert train.dtype == np.int64 and val.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsets_are_nested_and_never_overlap_validation(labels, seed):
    val_seen = None
    previous: set[int] = set()
    for n_train in (500, 1000, 2500, None):
        train, val = stratified_split(labels, n_train, 300, seed)
        assert not set(train) & set(val)
        assert previous <= set(train)  # the smaller subset is inside the larger one
        previous = set(train)
        if val_seen is not None:
            np.testing.assert_array_equal(val, val_seen)  # validation does not move
        val_seen = val
    assert len(previous) + 300 == len(labels)  # None took all the rest


def test_same_seed_repeats_and_other_seeds_differ(labels):
    a = stratified_split(labels, 1000, 200, seed=7)
    b = stratified_split(labels, 1000, 200, seed=7)
    c = stratified_split(labels, 1000, 200, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_asking_for_too_many_says_how_many_exist(labels):
    total = len(labels)
    with pytest.raises(ValueError, match=f"only {total - 100} images left"):
        stratified_split(labels, total, 100, seed=0)
    with pytest.raises(ValueError, match=f"only {total} images"):
        stratified_split(labels, 10, total + 1, seed=0)
    cats_and_dogs = int(np.sum((labels == 3) | (labels == 5)))
    with pytest.raises(ValueError, match=f"classes \\[3, 5\\] have only {cats_and_dogs}"):
        stratified_split(labels, cats_and_dogs + 1, 0, seed=0, classes=[3, 5])


def test_classes_restrict_the_choice(labels):
    train, val = stratified_split(labels, 300, 40, seed=0, classes=[5, 3])
    assert set(labels[train]) == {3, 5} and set(labels[val]) == {3, 5}
    assert _spread(labels, train, [3, 5]) == 0 and _spread(labels, val, [3, 5]) == 0


def test_a_small_class_runs_out_and_the_rest_stay_balanced():
    labels = np.array([0] * 3 + [1] * 50 + [2] * 50)
    train, _ = stratified_split(labels, 43, 0, seed=0)
    counts = np.bincount(labels[train], minlength=3)
    assert counts[0] == 3 and abs(counts[1] - counts[2]) <= 1 and counts.sum() == 43


def test_bad_arguments_are_refused(labels):
    with pytest.raises(ValueError, match="1-D integer"):
        stratified_split(labels.astype(float), 10, 0, seed=0)
    with pytest.raises(ValueError, match=">= 0"):
        stratified_split(labels, -1, 0, seed=0)
    with pytest.raises(ValueError, match=re.escape("classes [42] have no images")):
        stratified_split(labels, 10, 0, seed=0, classes=[1, 42])


# --- Splits -------------------------------------------------------------------------------


def _toy_splits(y_train: np.ndarray) -> Splits:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    return Splits(
        x, y_train, empty, np.zeros(0, np.int64), x[:2], y_train[:2], ("a", "b"), Path(".")
    )


def test_digest_changes_with_any_label_or_pixel():
    y = np.array([0, 1, 0, 1])
    base = _toy_splits(y)
    assert re.fullmatch("[0-9a-f]{16}", base.digest())
    assert _toy_splits(y.copy()).digest() == base.digest()
    assert _toy_splits(np.array([0, 1, 1, 1])).digest() != base.digest()
    moved = Splits(
        base.x_train[:3], base.y_train[:3], base.x_train[3:], base.y_train[3:],
        base.x_test, base.y_test, base.class_names, base.source,
    )  # fmt: skip
    assert moved.digest() != base.digest()  # same images, one moved to validation
    assert base.num_classes == 2


@pytest.mark.data
def test_prepare_gives_balanced_read_only_splits(cifar_root, cifar10):
    splits = prepare_cifar10(cifar_root, n_train=1000, n_val=500, seed=3)
    assert splits.x_train.shape == (1000, 32, 32, 3) and splits.x_train.dtype == np.uint8
    assert splits.x_val.shape == (500, 32, 32, 3)
    assert splits.y_train.dtype == np.int64 and splits.y_val.dtype == np.int64
    assert np.bincount(splits.y_train).tolist() == [100] * 10
    assert np.bincount(splits.y_val).tolist() == [50] * 10
    np.testing.assert_array_equal(splits.x_test, cifar10.x_test)
    assert splits.class_names == cifar10.class_names and splits.num_classes == 10
    with pytest.raises(ValueError):
        splits.x_train[0, 0, 0, 0] = 0
    # Every training image is a real training image with its own label.
    index = {
        img.tobytes(): label for img, label in zip(cifar10.x_train, cifar10.y_train, strict=True)
    }
    assert all(
        index[img.tobytes()] == y for img, y in zip(splits.x_train, splits.y_train, strict=True)
    )
    assert not {i.tobytes() for i in splits.x_train} & {i.tobytes() for i in splits.x_val}


@pytest.mark.data
def test_prepare_subsets_are_nested_and_digest_tracks_them(cifar_root):
    sets = []
    for n_train in (500, 1000, 2500):
        splits = prepare_cifar10(cifar_root, n_train=n_train, n_val=500, seed=0)
        sets.append({img.tobytes() for img in splits.x_train})
    assert sets[0] <= sets[1] <= sets[2] and len(sets[2]) == 2500
    a = prepare_cifar10(cifar_root, n_train=500, seed=0)
    assert prepare_cifar10(cifar_root, n_train=500, seed=0).digest() == a.digest()
    assert prepare_cifar10(cifar_root, n_train=500, seed=1).digest() != a.digest()
    assert a.x_val.shape == (0, 32, 32, 3) and a.y_val.shape == (0,)


@pytest.mark.data
def test_classes_are_kept_remapped_and_named(cifar_root, cifar10):
    splits = prepare_cifar10(cifar_root, n_train=200, n_val=20, seed=0, classes=[3, 5])
    assert splits.class_names == ("cat", "dog") and splits.num_classes == 2
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert set(np.unique(y)) == {0, 1}
    assert np.bincount(splits.y_train).tolist() == [100, 100]
    original = cifar10.y_test[np.isin(cifar10.y_test, [3, 5])]
    np.testing.assert_array_equal(splits.y_test, np.where(original == 3, 0, 1))
    np.testing.assert_array_equal(splits.x_test, cifar10.x_test[np.isin(cifar10.y_test, [3, 5])])
    # The order given decides the new labels.
    swapped = prepare_cifar10(cifar_root, n_train=200, seed=0, classes=[5, 3])
    assert swapped.class_names == ("dog", "cat")
    np.testing.assert_array_equal(swapped.y_test, 1 - splits.y_test)


@pytest.mark.data
@pytest.mark.parametrize(("classes", "message"), [([3, 3], "without repeats"), ([10], "0..9")])
def test_bad_classes_are_refused(cifar_root, classes, message):
    with pytest.raises(ValueError, match=message):
        prepare_cifar10(cifar_root, classes=classes)
