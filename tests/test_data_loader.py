"""BatchIterator: epochs cover every image once, shuffle reproducibly, yield float32."""

import numpy as np
import pytest

from cnn.data import Augmenter, BatchIterator, Normalizer

N = 103


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with the value i, and its label is i, so batches can be traced."""
    x = np.broadcast_to(np.arange(N, dtype=np.uint8)[:, None, None, None], (N, 4, 4, 3)).copy()
    return x, np.arange(N)


def _epoch(it: BatchIterator) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(it)


def test_each_epoch_covers_every_image_once(data):
    x, y = data
    it = BatchIterator(x, y, 10, shuffle=True, rng=np.random.default_rng(0))
    assert len(it) == 11
    for _ in range(2):
        batches = _epoch(it)
        assert len(batches) == 11 and [len(b[1]) for b in batches] == [10] * 10 + [3]
        labels = np.concatenate([b[1] for b in batches])
        assert sorted(labels.tolist()) == list(range(N))
        for xb, yb in batches:
            np.testing.assert_array_equal(xb[:, 0, 0, 0], yb)  # images stay with labels


def test_reshuffles_every_epoch_and_repeats_for_a_seed(data):
    x, y = data
    first = BatchIterator(x, y, 16, shuffle=True, rng=np.random.default_rng(4))
    second = BatchIterator(x, y, 16, shuffle=True, rng=np.random.default_rng(4))
    orders = [np.concatenate([b[1] for b in first]) for _ in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    for order in orders:
        np.testing.assert_array_equal(order, np.concatenate([b[1] for b in second]))
    other = BatchIterator(x, y, 16, shuffle=True, rng=np.random.default_rng(5))
    assert not np.array_equal(orders[0], np.concatenate([b[1] for b in other]))


def test_without_shuffle_the_order_is_kept(data):
    x, y = data
    labels = np.concatenate([b[1] for b in BatchIterator(x, y, 32)])
    np.testing.assert_array_equal(labels, np.arange(N))


def test_drop_last_skips_the_partial_batch(data):
    x, y = data
    it = BatchIterator(x, y, 10, shuffle=True, rng=np.random.default_rng(0), drop_last=True)
    batches = _epoch(it)
    assert len(it) == len(batches) == 10
    assert all(len(yb) == 10 for _, yb in batches)
    labels = np.concatenate([b[1] for b in batches])
    assert len(set(labels.tolist())) == 100
    assert len(BatchIterator(x[:100], y[:100], 10, drop_last=True)) == 10


def test_yields_float32_and_int64_never_float64(data):
    x, y = data
    to_float64 = BatchIterator(x, y.astype(np.int32), 20, transform=lambda b: b / 255.0)
    for xb, yb in to_float64:
        assert xb.dtype == np.float32 and yb.dtype == np.int64
    assert to_float64.x is x and x.dtype == np.uint8  # the dataset itself stays uint8
    xb, _ = next(iter(BatchIterator(x, y, 5)))
    assert xb.dtype == np.float32
    np.testing.assert_array_equal(xb, x[:5].astype(np.float32))


def test_transform_then_augment_per_batch(data):
    x, y = data
    norm = Normalizer().fit(x)
    seen = []

    def augment(batch, rng):
        seen.append(batch.dtype)
        return Augmenter(flip=True)(batch, rng)

    it = BatchIterator(x, y, 50, transform=norm, augment=augment, rng=np.random.default_rng(0))
    batches = _epoch(it)
    assert seen == [np.float32] * 3  # augmentation sees normalised float32 batches
    # Images are constant, so a flip changes nothing: the batch is exactly the normalised one.
    np.testing.assert_array_equal(batches[0][0], norm(x[:50]))


def test_refuses_misuse(data):
    x, y = data
    with pytest.raises(ValueError, match="rng=np.random.default_rng"):
        BatchIterator(x, y, 10, shuffle=True)
    with pytest.raises(ValueError, match="rng=np.random.default_rng"):
        BatchIterator(x, y, 10, augment=Augmenter(flip=True))
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, y, 0)
    with pytest.raises(ValueError, match="integer labels"):
        BatchIterator(x, y[:-1], 10)
