"""The residual block: gradients against finite differences, and the layer contract."""

import numpy as np
import pytest

from cnn import parallel
from cnn.gradcheck import check_layer, check_network
from cnn.layers import Conv2D, Dense, GlobalAvgPool, ReLU, ResidualBlock
from cnn.network import Sequential

TOL = 1e-6


def randomised(block: ResidualBlock, rng: np.random.Generator) -> ResidualBlock:
    """float64, with batch norms that are not the identity (gamma 1, beta 0, running 0/1)."""
    block.to(np.float64)
    for name, leaf in block.named_leaves():
        if name.endswith("bn1") or name.endswith("bn2") or name.endswith("bn"):
            c = leaf.num_features
            leaf.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
            leaf.params["beta"][...] = rng.standard_normal(c)
            leaf.buffers["running_mean"][...] = 0.3 * rng.standard_normal(c)
            leaf.buffers["running_var"][...] = rng.uniform(0.5, 2.0, c)
        elif "b" in leaf.params:
            leaf.params["b"][...] = 0.1 * rng.standard_normal(leaf.params["b"].shape)
    return block


CASES = {
    # id: (in, out, stride, options, the block's parameter names)
    "identity": (3, 3, 1, {}, {"conv1.W", "bn1.gamma", "bn1.beta", "conv2.W", "bn2.gamma",
                               "bn2.beta"}),
    "projection": (2, 4, 1, {}, {"conv1.W", "bn1.gamma", "bn1.beta", "conv2.W", "bn2.gamma",
                                 "bn2.beta", "shortcut.conv.W", "shortcut.bn.gamma",
                                 "shortcut.bn.beta"}),
    "stride2": (3, 4, 2, {}, None),
    "stride2_same_channels": (3, 3, 2, {}, None),
    "norm_none": (2, 3, 2, {"norm": "none"}, {"conv1.W", "conv1.b", "conv2.W", "conv2.b",
                                              "shortcut.conv.W", "shortcut.conv.b"}),
    "leaky_relu": (3, 3, 1, {"activation": "leaky_relu"}, None),
    "no_shortcut": (2, 3, 2, {"shortcut": False}, {"conv1.W", "bn1.gamma", "bn1.beta",
                                                   "conv2.W", "bn2.gamma", "bn2.beta"}),
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences(case, training):
    c_in, c_out, stride, options, names = CASES[case]
    rng = np.random.default_rng(0)
    block = randomised(ResidualBlock(c_in, c_out, stride, rng=rng, **options), rng)
    if names is not None:
        assert set(block.params) == names
    errors = check_layer(block, rng.standard_normal((3, 5, 5, c_in)), training=training)
    assert set(errors) == {"x", *block.params}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("h,stride,expected", [(8, 1, 8), (8, 2, 4), (7, 2, 4), (5, 3, 2)])
def test_output_shape(h, stride, expected):
    block = ResidualBlock(3, 5, stride)
    out = block.forward(np.zeros((2, h, h + 1, 3), dtype=np.float32), training=True)
    assert out.shape == (2, expected, -(-(h + 1) // stride), 5)
    assert out.dtype == np.float32


def test_shortcut_kinds_and_what_they_add():
    assert ResidualBlock(4, 4, 1).shortcut == "identity"
    assert ResidualBlock(4, 8, 1).shortcut == "projection"
    assert ResidualBlock(4, 4, 2).shortcut == "projection"
    assert ResidualBlock(4, 8, 2, shortcut=False).shortcut == "none"
    # Identity: with conv2's weights at zero the main path adds only bn2's beta (zero),
    # so the block passes relu(x) through.
    block = ResidualBlock(3, 3, 1, rng=np.random.default_rng(1))
    block.params["conv2.W"][...] = 0
    x = np.random.default_rng(2).standard_normal((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(block.forward(x, training=False), np.maximum(x, 0), atol=1e-6)


def test_input_grad_false_fills_the_same_gradients():
    rng = np.random.default_rng(3)
    block = randomised(ResidualBlock(2, 4, 2, rng=rng), rng)
    x, d = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((2, 3, 3, 4))
    block.forward(x, training=True)
    assert block.backward(d).shape == x.shape
    expected = {k: g.copy() for k, g in block.grads.items()}
    block.grads.clear()  # a copy: the sub-layers keep theirs until recomputed
    block.input_grad = False  # conv1's and the projection's too
    assert not block.sublayers["conv1"].input_grad
    assert not block.sublayers["shortcut.conv"].input_grad
    block.forward(x, training=True)
    assert block.backward(d) is None
    assert expected.keys() == block.grads.keys()
    for key, g in block.grads.items():
        np.testing.assert_array_equal(g, expected[key], err_msg=key)


def test_float32_and_float64():
    block = ResidualBlock(3, 4, 2)
    assert {v.dtype for v in [*block.params.values(), *block.buffers.values()]} == {
        np.dtype(np.float32)}
    block.to(np.float64)
    assert {v.dtype for v in [*block.params.values(), *block.buffers.values()]} == {
        np.dtype(np.float64)}
    x = np.ones((2, 4, 4, 3))
    assert block.forward(x, training=True).dtype == np.float64
    assert block.backward(np.ones((2, 2, 2, 4))).dtype == np.float64
    assert {g.dtype for g in block.grads.values()} == {np.dtype(np.float64)}


def test_threads_change_nothing_inside_a_block():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 6, 3)).astype(np.float32)
    d = rng.standard_normal((8, 3, 3, 4)).astype(np.float32)
    results = []
    for threads in (1, 2):
        block = ResidualBlock(3, 4, 2, rng=np.random.default_rng(5))
        # Small chunks, so that there are several for the threads to share.
        for leaf in block.sublayers.values():
            if isinstance(leaf, Conv2D):
                leaf.chunk_bytes = 4096
        with parallel.threads(threads):
            out = block.forward(x, training=True)
            dx = block.backward(d)
        results.append((out, dx, {k: g.copy() for k, g in block.grads.items()}))
    (out1, dx1, g1), (out2, dx2, g2) = results
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(dx1, dx2)
    for key in g1:
        np.testing.assert_array_equal(g1[key], g2[key], err_msg=key)


@pytest.mark.parametrize("knob,value", [("norm", "layer"), ("activation", "gelu")])
def test_unknown_options_are_named(knob, value):
    with pytest.raises(ValueError, match=f"{value!r}"):
        ResidualBlock(3, 3, **{knob: value})


def small_net(first_block: bool) -> Sequential:
    rng = np.random.default_rng(6)
    layers = [ResidualBlock(3, 4, 2, rng=rng)] if first_block else [
        Conv2D(3, 4, 3, padding=1, rng=rng), ReLU()]
    layers += [ResidualBlock(4, 4, 1, rng=rng), GlobalAvgPool(), Dense(4, 3, rng=rng)]
    return Sequential(layers, input_shape=(6, 6, 3))


def test_sequential_holds_blocks_like_any_layer(tmp_path):
    net = small_net(first_block=True)
    assert net.names == ["res1", "res2", "gap1", "dense1"]
    assert "res1.shortcut.conv.W" in net.params and "res2.bn1.running_var" in net.buffers
    leaves = dict(net.named_leaves())
    assert isinstance(leaves["res1.shortcut.conv"], Conv2D)
    assert list(leaves)[:3] == ["res1.conv1", "res1.bn1", "res1.act1"]
    assert "res1" not in leaves and "gap1" in leaves
    assert "res1 ResidualBlock(3->4, stride=2" in net.summary(print_fn=lambda _: None)

    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((4, 6, 6, 3)), rng.integers(0, 3, 4)
    net.to(np.float64)
    errors = check_network(net, x, y, max_checks=6)
    assert max(errors.values()) < TOL, errors

    # The first layer's input gradient is skipped, its weight gradients are not.
    net.input_grad = False  # a hand-built network computes it until told not to
    net.forward(x, training=True)
    assert net.backward(np.ones((4, 3))) is None
    assert {"res1.conv1.W", "res1.shortcut.conv.W"} <= net.grads.keys()

    net.save(tmp_path / "w.npz")
    other = small_net(first_block=True).to(np.float64)
    other.load(tmp_path / "w.npz")
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value, err_msg=key)


def test_a_mismatch_names_the_block_and_its_parameter():
    state = small_net(first_block=False).state_dict()
    state["res1.shortcut.conv.W"] = np.zeros((1, 1, 3, 4))
    del state["conv1.W"]
    with pytest.raises(ValueError, match="missing"):
        small_net(first_block=True).load_state_dict(state)
    state = small_net(first_block=True).state_dict()
    state["res1.conv2.W"] = np.zeros((3, 3, 4, 5))
    with pytest.raises(ValueError, match="layer 'res1', parameter 'conv2.W'"):
        small_net(first_block=True).load_state_dict(state)


def test_health_gradient_check_of_a_deep_resnet_probes_arrays_from_input_to_output(
        monkeypatch):
    """A resnet-20 has 65 parameter arrays; the health check checks 24 of them, spread
    from the stem to the classifier, so it stays affordable on deep networks."""
    from cnn import gradcheck
    from cnn.diagnostics import health
    from cnn.losses import SoftmaxCrossEntropy
    from cnn.models import build_model

    net = build_model("resnet", depth=20, widths=[2, 2, 2])
    checked = []

    def spy(*args, params=None, **kwargs):
        checked.append(list(params))
        return {"input": 0.0, **{k: 0.0 for k in params}}

    monkeypatch.setattr(health, "check_network", spy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    check = health.check_gradients(net, SoftmaxCrossEntropy(), x, np.array([0, 1]))
    assert check.status == "pass"
    (keys,) = checked
    assert len(keys) == health.MAX_CHECKED_ARRAYS == len(set(keys))
    assert keys[0] == "conv1.W" and keys[-1] == list(net.params)[-1]
    assert any(k.startswith("stage2.") for k in keys) and any(k.startswith("stage3.") for k in keys)
    # And the real check restricted to those keys reports exactly them (and the input).
    twin = build_model("resnet", depth=8, widths=[2, 2, 2]).to(np.float64)
    errors = gradcheck.check_network(twin, x.astype(np.float64), np.array([0, 1]),
                                     max_checks=2, params=["conv1.W", "dense1.b"])
    assert set(errors) == {"input", "conv1.W", "dense1.b"}
    assert max(errors.values()) < 1e-4
