"""Sequential.infer (each layer's `infer`, folded by `Layer.fold`) gives
forward(x, training=False)'s output.

Batch norm folded into the convolution before it changes only the rounding, so
the outputs agree to float tolerance, tightly in float64; max_pool agrees exactly.
"""

import numpy as np
import pytest
from rounding import gamma, longest_sum

from cnn.layers import BatchNorm2D, Conv2D, MaxPool2D, ReLU
from cnn.layers.conv import fold_affine
from cnn.layers.pooling import max_pool
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step

MODELS = [
    ("seed", {}),
    ("vgg", {}),
    ("resnet", {"depth": 8, "widths": [8, 16, 16]}),
    ("resnet", {"depth": 8, "widths": [8, 8, 16], "norm": "none", "activation": "leaky_relu"}),
    ("plain", {"depth": 8, "widths": [8, 16, 16]}),
]


def _trained(model: str, knobs: dict, dtype) -> tuple[object, np.ndarray]:
    """A network after two training steps, so that its batch norms' running statistics
    are no longer 0 and 1, and a batch to run it on."""
    rng = np.random.default_rng(0)
    x = (1.5 + 2 * rng.standard_normal((6, 32, 32, 3))).astype(dtype)
    y = rng.integers(0, 10, 6)
    net = build_model(model, init="pytorch", dtype=dtype, **knobs)
    for _ in range(2):
        train_step(net, SoftmaxCrossEntropy(), SGD(0.05, momentum=0.9), x, y)
    return net, x


@pytest.mark.parametrize(("model", "knobs"), MODELS, ids=[m for m, _ in MODELS[:2]]
                         + ["resnet", "resnet-nonorm-leaky", "plain"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infer_equals_evaluation_mode_forward(model, knobs, dtype):
    net, x = _trained(model, knobs, dtype)
    expected = net.forward(x, training=False)
    got = net.infer(x)
    assert got.dtype == dtype and got.shape == expected.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max())
    # In batches of 4 the products have other shapes, which BLAS may sum in another order:
    # equal within the rounding of the longest sum of a forward pass (no bit-identity).
    rtol = gamma(longest_sum(net.params, rows=1), dtype)
    np.testing.assert_allclose(net.predict(x, batch_size=4), net.predict(x), rtol=rtol,
                               atol=rtol * net.predict(x).max())


def test_a_convolution_folds_the_batch_norm_and_relu_after_it():
    rng = np.random.default_rng(1)
    conv = Conv2D(3, 4, 3, padding=1, bias=True, rng=rng, dtype=np.float64)
    conv.params["b"][:] = rng.standard_normal(4)
    bn = BatchNorm2D(4, dtype=np.float64)
    bn.params["gamma"][:], bn.params["beta"][:] = rng.standard_normal(4), rng.standard_normal(4)
    bn.buffers["running_mean"][:], bn.buffers["running_var"][:] = rng.standard_normal(4), 0.5
    x = rng.standard_normal((2, 5, 5, 3))
    expected = bn.forward(conv.forward(x), training=False)
    weights, bias = fold_affine(conv.params["W"], conv.params["b"], bn.channel_affine())
    np.testing.assert_allclose(conv.convolve(x, weights, bias), expected, atol=1e-12)
    run, absorbed = conv.fold([bn, ReLU(), MaxPool2D(2)])
    assert absorbed == 2  # the pooling after them is its own
    np.testing.assert_allclose(run(x), np.maximum(expected, 0), atol=1e-12)
    run, absorbed = conv.fold([ReLU()])
    assert absorbed == 1
    np.testing.assert_allclose(run(x), np.maximum(conv.forward(x), 0), atol=1e-12)
    assert conv.fold([MaxPool2D(2)])[1] == 0 and conv.fold([])[1] == 0
    assert fold_affine(conv.params["W"], None, None)[0] is conv.params["W"]


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 2), (3, 1)])
def test_max_pool_equals_maxpool2d(kernel, stride):
    x = np.random.default_rng(2).standard_normal((3, 9, 9, 5)).astype(np.float32)
    np.testing.assert_array_equal(max_pool(x, kernel, stride),
                                  MaxPool2D(kernel, stride).forward(x, training=False))
