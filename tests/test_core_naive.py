"""The vectorised convolution and pooling agree with loop-by-loop references."""

import naive
import numpy as np
import pytest

from cnn.layers import AvgPool2D, Conv2D, MaxPool2D

CONV_CASES = [
    # (N, H, W, C, F, kernel, stride, padding)
    (2, 5, 5, 3, 4, 3, 1, 1),
    (2, 7, 6, 2, 3, 3, 2, 1),
    (1, 8, 8, 3, 2, 5, 1, 2),
    (3, 6, 6, 1, 5, 1, 1, 0),
    (2, 9, 7, 2, 3, 4, 3, 0),
    (1, 4, 4, 2, 2, 2, 2, 0),
    (2, 6, 5, 2, 3, 3, 1, 0),  # stride 1, no padding: dx as a full convolution
    (1, 5, 5, 2, 2, 3, 1, 2),  # stride 1, padding K - 1: the widest the fast path takes
    # More than conv.FEW_CHANNELS input channels: patches gathered channels-last
    (2, 6, 6, 6, 3, 3, 1, 1),
    (2, 7, 6, 5, 4, 3, 2, 1),
    (1, 6, 5, 8, 2, 2, 2, 0),
]


@pytest.mark.parametrize("n,h,w,c,f,k,s,p", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_matches_naive_loops(n, h, w, c, f, k, s, p, bias):
    rng = np.random.default_rng(1)
    layer = Conv2D(c, f, k, stride=s, padding=p, bias=bias, rng=rng).to(np.float64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(f)
    x = rng.standard_normal((n, h, w, c))
    out = layer.forward(x, training=True)
    expected = naive.conv2d(x, layer.params["W"], layer.params.get("b"), s, p)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)

    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    ndx, ndw, ndb = naive.conv2d_backward(x, layer.params["W"], s, p, dout)
    np.testing.assert_allclose(dx, ndx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], ndw, rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.grads["b"], ndb, rtol=1e-10, atol=1e-12)


POOL_CASES = [(2, 4, 4, 3, 2, 2), (2, 5, 7, 2, 3, 2), (1, 6, 6, 2, 3, 3), (2, 7, 7, 1, 2, 1)]


@pytest.mark.parametrize("n,h,w,c,k,s", POOL_CASES)
def test_maxpool_matches_naive_loops(n, h, w, c, k, s):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, h, w, c))
    layer = MaxPool2D(k, s)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, naive.pool2d(x, k, s, np.max))
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(dout), naive.maxpool2d_backward(x, k, s, dout))


def test_maxpool_routes_ties_to_one_input_only():
    x = np.zeros((1, 2, 2, 1))  # every entry ties for the maximum
    layer = MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    assert dx.sum() == 1.0 and dx[0, 0, 0, 0] == 1.0


@pytest.mark.parametrize("n,h,w,c,k,s", POOL_CASES)
def test_avgpool_matches_naive_loops(n, h, w, c, k, s):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, h, w, c))
    np.testing.assert_allclose(AvgPool2D(k, s).forward(x), naive.pool2d(x, k, s, np.mean))
