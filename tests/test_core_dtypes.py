"""Every layer runs in float32 (the default) and in float64, and keeps the dtype."""

import numpy as np
import pytest

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

IMAGE_LAYERS = [
    lambda: Conv2D(3, 4, 3, padding=1),
    lambda: Conv2D(3, 4, 3, stride=2, bias=False),
    lambda: MaxPool2D(2),
    lambda: AvgPool2D(2),
    lambda: GlobalAvgPool(),
    lambda: ReLU(),
    lambda: LeakyReLU(),
    lambda: Flatten(),
    lambda: Dropout(0.5),
    lambda: BatchNorm2D(3),
]
VECTOR_LAYERS = [lambda: Dense(6, 4), lambda: BatchNorm1D(6), lambda: Softmax()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", IMAGE_LAYERS + VECTOR_LAYERS)
@pytest.mark.parametrize("training", [True, False])
def test_layer_keeps_dtype(make, dtype, training):
    layer = make().to(dtype)
    shape = (4, 6, 6, 3) if make in IMAGE_LAYERS else (4, 6)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = layer.forward(x, training=training)
    assert out.dtype == dtype
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and dx.shape == x.shape
    for key, grad in layer.grads.items():
        assert grad.dtype == dtype and grad.shape == layer.params[key].shape


def test_parameters_are_float32_by_default():
    net = build_model("vgg")
    assert {p.dtype for p in net.params.values()} == {np.dtype(np.float32)}
    assert {b.dtype for b in net.buffers.values()} == {np.dtype(np.float32)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_is_stable_for_huge_logits(dtype):
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]], dtype=dtype)
    value = loss.forward(logits, np.array([0, 2]))
    # The first row is certain and right (loss 0), the second certain and wrong (loss 1e4).
    assert np.isfinite(value) and value == pytest.approx(1e4 / 2)
    grad = loss.backward()
    assert np.isfinite(grad).all() and grad.dtype == dtype
