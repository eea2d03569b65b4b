"""Every layer's backward pass agrees with centred finite differences in float64."""

import numpy as np
import pytest

from cnn.gradcheck import check_layer, check_network, numerical_gradient, relative_error
from cnn.layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Softmax,
)
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model

TOL = 1e-6


def away_from_zero(rng, shape):
    """Inputs at least 0.1 from the kink of ReLU-like units, where the derivative jumps."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


def assert_all_close(errors):
    assert errors, "nothing was checked"
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize(
    "h,w,c,f,k,s,p",
    [
        (5, 5, 3, 4, 3, 1, 1),
        (6, 6, 2, 3, 3, 2, 1),
        (7, 5, 2, 2, 3, 2, 0),
        (8, 8, 3, 2, 5, 1, 2),
        (5, 5, 2, 3, 1, 1, 0),
        (7, 7, 2, 2, 2, 2, 0),
        (9, 9, 1, 2, 4, 3, 2),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(h, w, c, f, k, s, p, bias):
    rng = np.random.default_rng(0)
    layer = Conv2D(c, f, k, stride=s, padding=p, bias=bias, rng=rng).to(np.float64)
    if bias:
        layer.params["b"][...] = rng.standard_normal(f)
    errors = check_layer(layer, rng.standard_normal((2, h, w, c)))
    assert set(errors) == {"x", "W", "b"} if bias else {"x", "W"}
    assert_all_close(errors)


@pytest.mark.parametrize("layer_cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("h,w,k,s", [(4, 4, 2, 2), (5, 7, 3, 2), (6, 6, 3, 3), (5, 5, 2, 1)])
def test_pooling(layer_cls, h, w, k, s):
    rng = np.random.default_rng(1)
    assert_all_close(check_layer(layer_cls(k, s), rng.standard_normal((2, h, w, 3))))


def test_global_avg_pool():
    rng = np.random.default_rng(2)
    assert_all_close(check_layer(GlobalAvgPool(), rng.standard_normal((3, 5, 4, 2))))


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Flatten()])
def test_elementwise_and_reshape(layer):
    rng = np.random.default_rng(3)
    assert_all_close(check_layer(layer, away_from_zero(rng, (3, 4, 4, 2))))


@pytest.mark.parametrize("bias", [True, False])
def test_dense(bias):
    rng = np.random.default_rng(4)
    layer = Dense(7, 5, bias=bias, rng=rng).to(np.float64)
    assert_all_close(check_layer(layer, rng.standard_normal((6, 7))))


def test_dropout_in_training_replays_its_mask():
    rng = np.random.default_rng(5)
    layer = Dropout(0.3, rng=np.random.default_rng(1))
    x = rng.standard_normal((8, 6))
    assert_all_close(check_layer(layer, x, training=True))
    assert (layer.forward(x, training=True) == 0).any(), "dropout dropped nothing"


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d(training):
    rng = np.random.default_rng(6)
    layer = BatchNorm2D(3).to(np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 3)
    layer.params["beta"][...] = rng.standard_normal(3)
    layer.buffers["running_mean"][...] = rng.standard_normal(3)
    layer.buffers["running_var"][...] = rng.uniform(0.5, 2.0, 3)
    assert_all_close(
        check_layer(layer, 2 + 3 * rng.standard_normal((4, 3, 3, 3)), training=training)
    )


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm1d(training):
    rng = np.random.default_rng(7)
    layer = BatchNorm1D(5).to(np.float64)
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 5)
    assert_all_close(check_layer(layer, rng.standard_normal((6, 5)), training=training))


def test_softmax():
    rng = np.random.default_rng(8)
    assert_all_close(check_layer(Softmax(), rng.standard_normal((4, 6))))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy(smoothing):
    rng = np.random.default_rng(9)
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    loss = SoftmaxCrossEntropy(smoothing)
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    assert relative_error(analytic, numeric) < TOL


@pytest.mark.parametrize("name", ["seed", "vgg"])
def test_whole_network(name):
    rng = np.random.default_rng(10)
    net = build_model(name, input_shape=(8, 8, 3), num_classes=4, seed=1, dtype=np.float64)
    x, y = rng.standard_normal((4, 8, 8, 3)), rng.integers(0, 4, 4)
    errors = check_network(net, x, y, max_checks=8)
    assert {"input", "conv1.W", "dense1.W"} <= set(errors)
    assert_all_close(errors)


def test_a_wrong_gradient_is_caught():
    """The check itself must fail loudly when backward is wrong."""

    class BrokenReLU(ReLU):
        def backward(self, dout):
            return 0.9 * super().backward(dout)

    rng = np.random.default_rng(11)
    errors = check_layer(BrokenReLU(), away_from_zero(rng, (2, 3, 3, 2)))
    assert errors["x"] > 1e-3


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        check_layer(Dense(3, 2), np.ones((2, 3), dtype=np.float32))
