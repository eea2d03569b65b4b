"""The custom family: a network from layer specs, sizes inferred, errors that name the spec."""

import numpy as np
import pytest

from cnn.models import build_model


def test_custom_by_default_is_the_seed_network():
    seed, custom = build_model("seed", seed=3), build_model("custom", seed=3)
    assert custom.names == seed.names
    for key, value in seed.state_dict().items():
        np.testing.assert_array_equal(custom.state_dict()[key], value, err_msg=key)


def test_custom_infers_sizes_and_appends_the_classifier():
    layers = [
        {"type": "conv", "out": 6, "kernel": 5, "padding": 0, "bias": False},  # 12 -> 8
        {"type": "batchnorm"}, {"type": "leaky_relu", "slope": 0.2},
        {"type": "residual", "out": 8, "stride": 2},  # 8 -> 4
        {"type": "residual", "norm": "none", "activation": "leaky_relu", "shortcut": False},
        {"type": "avgpool"},  # 4 -> 2
        {"type": "dense", "out": 7},  # flattens 2 * 2 * 8 = 32 first
        {"type": "batchnorm"}, {"type": "relu"}, {"type": "dropout", "p": 0.3},
    ]
    net = build_model("custom", layers=layers, input_shape=(12, 12, 3), num_classes=4)
    assert net.names == ["conv1", "bn1", "leakyrelu1", "res1", "res2", "avgpool1", "flatten1",
                         "dense1", "bn1d1", "relu1", "dropout1", "dense2"]
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes["conv1.W"] == (5, 5, 3, 6) and "conv1.b" not in shapes
    assert shapes["res1.shortcut.conv.W"] == (1, 1, 6, 8)
    assert shapes["res2.conv1.W"] == (3, 3, 8, 8) and "res2.conv1.b" in shapes
    assert shapes["dense1.W"] == (32, 7) and shapes["bn1d1.gamma"] == (7,)
    assert shapes["dense2.W"] == (7, 4)
    assert net.layers[2].alpha == 0.2 and net.layers[10].p == 0.3
    assert net.forward(np.zeros((2, 12, 12, 3), np.float32), training=True).shape == (2, 4)


def test_custom_keeps_a_final_classifier_and_pools_globally():
    layers = [{"type": "conv", "out": 4, "stride": 2}, {"type": "maxpool", "size": 3, "stride": 1},
              {"type": "global_avgpool"}, {"type": "dense", "out": 5}]
    net = build_model("custom", layers=layers, input_shape=(9, 9, 3), num_classes=5)
    assert net.names == ["conv1", "pool1", "gap1", "dense1"]
    assert net.layers[1].kernel == 3 and net.layers[1].stride == 1
    # Ending on images, the classifier flattens them itself.
    net = build_model("custom", layers=[{"type": "conv", "out": 2}], input_shape=(4, 4, 1))
    assert net.names == ["conv1", "flatten1", "dense1"]
    assert net.params["dense1.W"].shape == (4 * 4 * 2, 10)


@pytest.mark.parametrize("layers,message", [
    ([{"type": "relu"}, {"type": "convolution"}],
     r"custom layers\[1\]: unknown type 'convolution'; allowed: conv, batchnorm, relu"),
    ([{"out": 3}], r"custom layers\[0\]: no 'type' key in \{'out': 3\}; types: conv,"),
    ([{"type": "conv", "out": 8, "size": 3}],
     r"custom layers\[0\] \(conv\): unknown key 'size'; allowed: type, out, kernel, stride, "
     r"padding, bias"),
    ([{"type": "relu", "slope": 0.1}], r"layers\[0\] \(relu\): unknown key 'slope'; allowed: "
                                       r"type$"),
    ([{"type": "dense"}], r"custom layers\[0\] \(dense\): missing key 'out'"),
    ([{"type": "conv", "out": "8"}], r"layers\[0\] \(conv\): out must be int, got '8'"),
    ([{"type": "conv", "out": 0}], r"layers\[0\] \(conv\): out must be at least 1, got 0"),
    ([{"type": "flatten"}, {"type": "conv", "out": 4}],
     r"custom layers\[1\] \(conv\) needs images \(H, W, C\), but its input is flat: \(48,\)"),
    ([{"type": "maxpool", "size": 8}], r"custom layers\[0\] \(maxpool\): .*window"),
    ([{"type": "dropout", "p": 1.0}], r"custom layers\[0\] \(dropout\): dropout probability"),
    ([{"type": "residual", "norm": "layer"}], r"custom layers\[0\] \(residual\): .*'layer'"),
])
def test_custom_errors_name_the_layer_and_the_key(layers, message):
    with pytest.raises(ValueError, match=message):
        build_model("custom", layers=layers, input_shape=(4, 4, 3))
