"""Normalisation statistics: fitted on the training subset only, float32 out."""

import json

import numpy as np
import pytest

from cnn.data import Normalizer, prepare_cifar10


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """uint8 (N, 8, 8, 3) with a different mean and spread per channel."""
    rng = np.random.default_rng(0)
    x = rng.normal([60, 128, 200], [10, 30, 20], size=(300, 8, 8, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def test_fit_computes_per_channel_mean_and_std(images):
    norm = Normalizer().fit(images)
    flat = images.reshape(-1, 3).astype(np.float64)
    assert norm.mean.dtype == np.float32 and norm.std.dtype == np.float32
    np.testing.assert_allclose(norm.mean, flat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, flat.std(axis=0), rtol=1e-6)


def test_fit_over_several_chunks_matches_numpy():
    # More images than one fitting chunk holds, so the chunked sums are exercised.
    x = np.random.default_rng(1).integers(0, 256, size=(5000, 2, 2, 3), dtype=np.uint8)
    norm = Normalizer().fit(x)
    np.testing.assert_allclose(norm.std, x.reshape(-1, 3).std(axis=0), rtol=1e-6)


def test_call_standardises_into_float32_without_touching_input(images):
    norm = Normalizer().fit(images)
    before = images.copy()
    out = norm(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    flat = out.reshape(-1, 3).astype(np.float64)  # check in float64, not float32 sums
    np.testing.assert_allclose(flat.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(axis=0), 1, rtol=1e-5)
    np.testing.assert_array_equal(images, before)


def test_state_round_trips_through_json(images):
    norm = Normalizer().fit(images)
    state = json.loads(json.dumps(norm.state()))
    assert set(state) == {"mean", "std"} and len(state["mean"]) == 3
    np.testing.assert_array_equal(Normalizer.from_state(state)(images), norm(images))


def test_constant_channel_and_misuse(images):
    x = images.copy()
    x[..., 1] = 7
    out = Normalizer().fit(x)(x)
    assert np.all(np.isfinite(out)) and np.all(out[..., 1] == 0)
    with pytest.raises(RuntimeError, match="not fitted"):
        Normalizer()(images)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        Normalizer().fit(images)(images[..., :2])
    with pytest.raises(ValueError, match="std > 0"):
        Normalizer(mean=[0, 0, 0], std=[1, 0, 1])


@pytest.mark.data
def test_statistics_come_from_the_training_subset_only(cifar_root, cifar10):
    splits = prepare_cifar10(cifar_root, n_train=500, n_val=300, seed=0)
    norm = Normalizer().fit(splits.x_train)
    subset_mean = splits.x_train.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(norm.mean, subset_mean, rtol=1e-6)
    used = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    for other in (Normalizer().fit(cifar10.x_train), Normalizer().fit(used)):
        # The subset's statistics really differ from those of the larger sets.
        assert np.abs(norm.mean - other.mean).max() > 0.05
        assert np.abs(norm.std - other.std).max() > 0.05
