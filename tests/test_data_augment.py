"""Random crops, flips and cutout: shapes, dtypes, seeds, and agreement with a naive reference."""

import numpy as np
import pytest

from cnn.data import Augmenter, cutout, random_crop, random_flip


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


def _naive_cutout(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixel by pixel, from the same draws (every centre row, then every centre column):
    the square spans size rows from centre - size // 2, and as many columns."""
    n, height, width, _ = x.shape
    rows, cols = rng.integers(0, height, size=n), rng.integers(0, width, size=n)
    out = x.copy()
    for i in range(n):
        top, left = rows[i] - size // 2, cols[i] - size // 2
        for r in range(height):
            for c in range(width):
                if top <= r < top + size and left <= c < left + size:
                    out[i, r, c, :] = 0
    return out


@pytest.mark.parametrize("size", [1, 4, 5, 8])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_cutout_matches_a_naive_loop(size, dtype):
    x = _batch(dtype, n=40) + 1  # no zero pixels before the cut
    out = cutout(x, size, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(out, _naive_cutout(x, size, np.random.default_rng(0)))


def test_cutout_cuts_one_square_clipped_at_the_edges():
    x = np.ones((500, 8, 8, 3), np.float32)
    cut = cutout(x, 4, np.random.default_rng(1)) == 0
    assert np.array_equal(cut.all(axis=-1), cut.any(axis=-1))  # every channel or none
    for image in cut[..., 0]:
        rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        # One rectangle, at most 4 x 4, smaller only where it meets a border.
        assert image.sum() == len(rows) * len(cols) and np.all(np.diff(rows) == 1)
        assert len(rows) == 4 or rows[0] == 0 or rows[-1] == 7
        assert len(cols) == 4 or cols[0] == 0 or cols[-1] == 7
    areas = cut[..., 0].sum(axis=(1, 2))
    assert areas.min() >= 4 and areas.max() == 16 and (areas < 16).any()


def test_cutout_of_size_zero_draws_nothing_and_bad_sizes_are_refused():
    x, rng = _batch(np.float32), np.random.default_rng(0)
    out = cutout(x, 0, rng)
    np.testing.assert_array_equal(out, x)
    assert out is not x and rng.integers(1000) == np.random.default_rng(0).integers(1000)
    with pytest.raises(ValueError, match="cutout size must be >= 0, got -1"):
        cutout(x, -1, rng)
    with pytest.raises(ValueError, match="cutout must be >= 0, got -2"):
        Augmenter(cutout=-2)


def test_augmenter_cuts_out_after_crop_and_flip_and_draws_nothing_for_it_when_off():
    x = _batch(np.float32) + 1
    rng = np.random.default_rng(0)
    by_hand = cutout(random_flip(random_crop(x, 2, rng), rng), 3, rng)
    np.testing.assert_array_equal(Augmenter(2, flip=True, cutout=3)(x, np.random.default_rng(0)),
                                  by_hand)
    # Off, it leaves the generator where crop and flip leave it: recipes without it are
    # the numbers they were.
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    Augmenter(2, flip=True)(x, a)
    random_flip(random_crop(x, 2, b), b)
    assert a.integers(1000) == b.integers(1000)
