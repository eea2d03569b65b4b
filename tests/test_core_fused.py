"""A fused batch norm and ReLU (cnn/layers/fused.py) gives what the two layers give apart,
forward and backward, in float32 and float64, alone and inside a network built with
fuse=True; its own gradient agrees with finite differences; the layers stay usable alone."""

import numpy as np
import pytest

from cnn import parallel
from cnn.gradcheck import check_layer
from cnn.layers import BatchNorm2D, BatchNormReLU2D, Conv2D, MaxPool2D, ReLU
from cnn.layers.fused import fuse_layers
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model

# Within rounding of the dtype: the fused sums add chunk by chunk, the others at once.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def _pair(dtype, channels=8, seed=0):
    rng = np.random.default_rng(seed)
    norm = BatchNorm2D(channels).to(dtype)
    norm.params["gamma"][...] = rng.uniform(0.5, 1.5, channels)
    norm.params["beta"][...] = rng.standard_normal(channels) * 0.5
    norm.buffers["running_mean"][...] = rng.standard_normal(channels)
    norm.buffers["running_var"][...] = rng.uniform(0.5, 2.0, channels)
    apart = BatchNorm2D(channels).to(dtype)
    for store in ("params", "buffers"):
        for key, value in getattr(norm, store).items():
            getattr(apart, store)[key][...] = value
    return apart, ReLU(), BatchNormReLU2D.sharing(norm)


def _close(a, b, dtype):
    scale = max(float(np.abs(b).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_fused_layer_equals_batch_norm_then_relu(dtype, training, threads):
    norm, relu, fused = _pair(dtype)
    rng = np.random.default_rng(1)
    # 1.3 MB of float32: several chunks, so the chunked sums are tested too.
    x = (2 + 3 * rng.standard_normal((40, 32, 32, 8))).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    with parallel.threads(threads):
        out = relu.forward(norm.forward(x, training), training)
        dx = norm.backward(relu.backward(dout))
        fused_out = fused.forward(x, training)
        fused_dx = fused.backward(dout)
    assert fused_out.dtype == dtype and fused_dx.dtype == dtype
    _close(fused_out, out, dtype)
    _close(fused_dx, dx, dtype)
    for key in ("gamma", "beta"):
        _close(fused.grads[key], norm.grads[key], dtype)
    for key in ("running_mean", "running_var"):
        _close(fused.buffers[key], norm.buffers[key], dtype)
    assert (fused_out == 0).any() and (fused_out > 0).any()  # both sides of the kink


def _pre_activation(layer, x, training):
    """gamma * xhat + beta, with the batch's statistics or the running ones."""
    mean, var = (x.mean((0, 1, 2)), x.var((0, 1, 2))) if training else (
        layer.buffers["running_mean"], layer.buffers["running_var"])
    return layer.params["gamma"] * (x - mean) / np.sqrt(var + layer.eps) + layer.params["beta"]


@pytest.mark.parametrize("training", [True, False])
def test_the_fused_gradient_agrees_with_finite_differences(training):
    rng = np.random.default_rng(3)
    _, _, fused = _pair(np.float64, channels=3, seed=2)
    # Inputs whose outputs are all 0.05 or more from ReLU's kink, where the derivative jumps
    # and a finite difference across it means nothing: drawn until a batch is.
    x = 2 + 3 * rng.standard_normal((4, 3, 3, 3))
    while np.abs(_pre_activation(fused, x, training)).min() < 0.05:
        x = 2 + 3 * rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_allclose(fused.forward(x, training),
                               np.maximum(_pre_activation(fused, x, training), 0), atol=1e-12)
    errors = check_layer(fused, x, training=training)
    assert set(errors) == {"x", "gamma", "beta"} and max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_fused_network_trains_and_infers_as_the_unfused_one(dtype):
    knobs = {"widths": [4, 8], "dtype": dtype}
    apart, fused = build_model("vgg", **knobs), build_model("vgg", fuse=True, **knobs)
    assert [type(layer) for layer in fused.layers].count(BatchNormReLU2D) == 4
    assert ReLU not in {type(layer) for layer in fused.layers}
    # The same state under the same keys: one's checkpoint is the other's.
    assert {k: v.shape for k, v in apart.state_dict().items()} == {
        k: v.shape for k, v in fused.state_dict().items()}
    apart.input_grad = fused.input_grad = True
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 32, 32, 3)).astype(dtype)
    y = rng.integers(0, 10, 6)
    loss = SoftmaxCrossEntropy()
    dx = {}
    for name, net in (("apart", apart), ("fused", fused)):
        loss.forward(net.forward(x, training=True), y)
        dx[name] = net.backward(loss.backward())
    _close(dx["fused"], dx["apart"], dtype)
    for key, grad in apart.grads.items():
        _close(fused.grads[key], grad, dtype)
    for key, value in apart.buffers.items():
        _close(fused.buffers[key], value, dtype)
    # Inference folds the fused layer, ReLU included, into the convolution before it.
    _close(fused.infer(x), apart.infer(x), dtype)
    _close(fused.forward(x, training=False), apart.forward(x, training=False), dtype)
    run, absorbed = fused.layers[0].fold(fused.layers[1:])
    assert absorbed == 1 and (run(x) >= 0).all()
    fused.load_state_dict(apart.state_dict())  # loads without a mismatch


def test_only_a_batch_norm_followed_by_relu_is_fused_and_names_are_kept():
    conv, norm, relu, pool, lone = Conv2D(3, 4, 3), BatchNorm2D(4), ReLU(), MaxPool2D(2), \
        BatchNorm2D(4)
    layers, names = fuse_layers([conv, norm, relu, pool, lone, ReLU()],
                                ["c", "n", "r", None, "m", None])
    assert [type(layer) for layer in layers] == [Conv2D, BatchNormReLU2D, MaxPool2D,
                                                 BatchNormReLU2D]
    assert names == ["c", "n", None, "m"]
    assert layers[1].params["gamma"] is norm.params["gamma"]  # the same arrays, not copies
    layers, _ = fuse_layers([norm, pool, relu], [None] * 3)  # not adjacent: as they were
    assert [type(layer) for layer in layers] == [BatchNorm2D, MaxPool2D, ReLU]
    # The unfused seed network has no batch norm: fuse changes nothing.
    assert build_model("seed", fuse=True).names == build_model("seed").names
