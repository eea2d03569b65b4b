"""Random crops and flips: shapes, dtypes, seeds, and agreement with a naive reference."""

import numpy as np
import pytest

from cnn.data import Augmenter, random_crop, random_flip


def _batch(dtype, n=16, size=8, channels=3, seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 256, size=(n, size, size, channels))
    return x.astype(dtype)


def _naive_crops(image: np.ndarray, pad: int, mode: str) -> dict[tuple[int, int], np.ndarray]:
    """Every crop of one padded image, keyed by (row, column) offset."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
    return {
        (oy, ox): padded[oy : oy + height, ox : ox + width]
        for oy in range(2 * pad + 1)
        for ox in range(2 * pad + 1)
    }


def _offsets(x: np.ndarray, out: np.ndarray, pad: int, mode: str) -> list[tuple[int, int]]:
    """For each output image, the offset whose naive crop it equals (fails if none does)."""
    found = []
    for image, cropped in zip(x, out, strict=True):
        matches = [
            k for k, v in _naive_crops(image, pad, mode).items() if np.array_equal(v, cropped)
        ]
        assert matches, "an output image is not any crop of its padded input"
        found.append(matches[0])
    return found


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("mode", "np_mode"), [("reflect", "reflect"), ("zero", "constant")])
def test_crop_is_a_crop_of_the_padded_image(dtype, mode, np_mode):
    x = _batch(dtype, n=32)
    out = random_crop(x, 3, np.random.default_rng(0), mode=mode)
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = _offsets(x, out, 3, np_mode)
    assert len(set(offsets)) > 5  # each image gets its own offset


def test_crop_offsets_cover_the_whole_range():
    x = _batch(np.float32, n=600, size=4, channels=1)
    out = random_crop(x, 1, np.random.default_rng(0), mode="reflect")
    assert set(_offsets(x, out, 1, "reflect")) == {(i, j) for i in range(3) for j in range(3)}


def test_zero_mode_shift_leaves_a_zero_border():
    x = np.ones((200, 6, 6, 2), np.float32)
    out = random_crop(x, 2, np.random.default_rng(0), mode="zero")
    zeros = out == 0
    # Every image is a shifted block of ones: its zero pixels form whole rows and columns.
    for image in zeros[..., 0]:
        rows, cols = image.all(axis=1), image.all(axis=0)
        assert np.array_equal(image, rows[:, None] | cols[None, :])
    assert zeros.any() and not zeros.all(axis=(1, 2, 3)).any()
    np.testing.assert_array_equal(
        random_crop(x, 2, np.random.default_rng(5), mode="constant"),
        random_crop(x, 2, np.random.default_rng(5), mode="zero"),
    )


def test_crop_is_reproducible_and_seed_dependent():
    x = _batch(np.float32)
    a = random_crop(x, 4, np.random.default_rng(1))
    np.testing.assert_array_equal(a, random_crop(x, 4, np.random.default_rng(1)))
    assert not np.array_equal(a, random_crop(x, 4, np.random.default_rng(2)))


def test_crop_with_zero_pad_is_identity():
    x = _batch(np.uint8)
    out = random_crop(x, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, x)
    assert out is not x


def test_crop_refuses_bad_arguments():
    x = _batch(np.float32, size=4)
    with pytest.raises(ValueError, match="pad mode"):
        random_crop(x, 1, np.random.default_rng(0), mode="wrap")
    with pytest.raises(ValueError, match="pad < 4"):
        random_crop(x, 4, np.random.default_rng(0), mode="reflect")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        random_crop(x[0], 1, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_flip_probability_one_and_zero(dtype):
    x = _batch(dtype)
    flipped = random_flip(x, np.random.default_rng(0), p=1.0)
    assert flipped.dtype == x.dtype
    np.testing.assert_array_equal(flipped, x[:, :, ::-1])
    np.testing.assert_array_equal(random_flip(x, np.random.default_rng(0), p=0.0), x)


def test_flip_is_per_image_and_reproducible():
    x = _batch(np.float32, n=200)
    out = random_flip(x, np.random.default_rng(3))
    was_flipped = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x, strict=True)])
    unchanged = np.array([np.array_equal(o, i) for o, i in zip(out, x, strict=True)])
    assert np.all(was_flipped ^ unchanged)
    assert 60 < was_flipped.sum() < 140
    np.testing.assert_array_equal(out, random_flip(x, np.random.default_rng(3)))
    assert not np.array_equal(out, random_flip(x, np.random.default_rng(4)))


def test_augmenter_combines_crop_and_flip():
    x = _batch(np.float32)
    plain = Augmenter()
    np.testing.assert_array_equal(plain(x, np.random.default_rng(0)), x)
    both = Augmenter(crop_pad=2, pad_mode="zero", flip=True)
    out = both(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, both(x, np.random.default_rng(0)))
    assert not np.array_equal(out, both(x, np.random.default_rng(1)))
    # Same draws as cropping, then flipping, by hand.
    rng = np.random.default_rng(0)
    by_hand = random_flip(random_crop(x, 2, rng, mode="zero"), rng)
    np.testing.assert_array_equal(out, by_hand)
    with pytest.raises(ValueError, match="pad_mode"):
        Augmenter(crop_pad=2, pad_mode="mirror")
