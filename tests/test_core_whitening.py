"""Whitening-based initialisation of the first convolution (cnn.whitening), and the batch
norms' momentum knob of the residual families."""

import numpy as np
import pytest

from cnn.layers import BatchNorm2D, Conv2D
from cnn.models import build_model
from cnn.whitening import patch_covariance, whiten_first_conv, whitening_filters


def _correlated_images(n=40, seed=0):
    """(n, 12, 12, 3) images whose neighbouring pixels and channels are correlated."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, 13, 13, 3))
    smooth = noise[:, 1:, 1:] + noise[:, :-1, 1:] + noise[:, 1:, :-1]  # (n, 12, 12, 3)
    return (smooth + 0.5 * smooth.sum(axis=3, keepdims=True)).astype(np.float32)


def _patches(images, k):
    """Every valid k x k patch, flattened in the (KH, KW, C) order, by loops."""
    n, h, w, _ = images.shape
    return np.array([images[i, r:r + k, c:c + k].ravel()
                     for i in range(n) for r in range(h - k + 1) for c in range(w - k + 1)],
                    dtype=np.float64)


def test_patch_covariance_matches_numpy_on_the_patches():
    images = _correlated_images(n=7)
    expected = np.cov(_patches(images, 3), rowvar=False)
    np.testing.assert_allclose(patch_covariance(images, (3, 3)), expected, rtol=1e-8, atol=1e-8)


def test_filters_whiten_the_patches_in_opposite_pairs():
    images = _correlated_images()
    filters = whitening_filters(images, (3, 3), pairs=5, eps=1e-6)  # (3, 3, 3, 10)
    assert filters.shape == (3, 3, 3, 10)
    flat = filters.reshape(27, 10)
    np.testing.assert_allclose(flat[:, 5:], -flat[:, :5])
    outputs = _patches(images, 3) @ flat[:, :5]  # what the convolution computes, no padding
    np.testing.assert_allclose(np.cov(outputs, rowvar=False), np.eye(5), atol=1e-4)
    # The pairs are the directions of largest variance, in decreasing order.
    eigenvalues = np.linalg.eigvalsh(patch_covariance(images, (3, 3)))[::-1]
    norms = np.linalg.norm(flat[:, :5], axis=0)
    np.testing.assert_allclose(norms, 1 / np.sqrt(eigenvalues[:5] + 1e-6), rtol=1e-6)


def test_whiten_first_conv_replaces_the_stems_filters_only():
    images = _correlated_images()
    net = build_model("resnet", input_shape=(12, 12, 3), depth=8, widths=[8, 8, 8], seed=0)
    before = net.state_dict()
    assert whiten_first_conv(net, images) == 8
    stem = net.layers[0]
    assert isinstance(stem, Conv2D)
    expected = whitening_filters(images, (3, 3), pairs=4)
    np.testing.assert_allclose(stem.params["W"], expected, rtol=1e-5)
    for key, value in net.state_dict().items():
        if key != "conv1.W":
            np.testing.assert_array_equal(value, before[key])
    # A stem wider than twice the patch dimension keeps its remaining random filters.
    wide = build_model("resnet", input_shape=(12, 12, 3), depth=8, widths=[60, 8, 8], seed=0)
    kept = wide.layers[0].params["W"][..., 54:].copy()
    assert whiten_first_conv(wide, images) == 54
    np.testing.assert_array_equal(wide.layers[0].params["W"][..., 54:], kept)


def test_whitening_refuses_images_that_do_not_fit():
    net = build_model("seed", input_shape=(12, 12, 3))
    with pytest.raises(ValueError, match="takes 3 channels"):
        whiten_first_conv(net, np.zeros((4, 12, 12, 1), np.float32))
    with pytest.raises(ValueError, match="pairs must be in"):
        whitening_filters(_correlated_images(4), (3, 3), pairs=28)


@pytest.mark.parametrize("family", ["resnet", "plain"])
def test_bn_momentum_reaches_every_batch_norm(family):
    net = build_model(family, input_shape=(8, 8, 3), depth=8, widths=[4, 8, 8],
                      bn_momentum=0.3)
    norms = [leaf for _, leaf in net.named_leaves() if isinstance(leaf, BatchNorm2D)]
    assert len(norms) == (9 if family == "resnet" else 7)  # stem, 6 in blocks, 2 projections
    assert {bn.momentum for bn in norms} == {0.3}
    default = build_model(family, input_shape=(8, 8, 3), depth=8, widths=[4, 8, 8])
    assert {leaf.momentum for _, leaf in default.named_leaves()
            if isinstance(leaf, BatchNorm2D)} == {0.1}
    with pytest.raises(ValueError, match="bn_momentum must be in"):
        build_model(family, input_shape=(8, 8, 3), depth=8, bn_momentum=0.0)
