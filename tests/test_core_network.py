"""Sequential's bookkeeping: names, params, modes, weights on disk, initialisers."""

import numpy as np
import pytest

from cnn.initializers import get_initializer
from cnn.layers import Conv2D, Dense, Flatten, ReLU
from cnn.models import build_model, reinitialize
from cnn.network import Sequential, WeightsMismatchError


def test_params_and_grads_share_keys_and_arrays():
    net = build_model("seed")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    net.backward(np.ones_like(net.forward(x)))
    assert net.params.keys() == net.grads.keys()
    assert list(net.params) == ["conv1.W", "conv1.b", "conv2.W", "conv2.b", "dense1.W", "dense1.b"]
    net.params["conv1.W"][...] = 0  # the same array the layer uses
    assert not net.layers[0].params["W"].any()


def test_summary_lists_shapes_and_counts():
    lines = []
    text = build_model("seed").summary(print_fn=lines.append)
    assert lines == [text]
    assert "(32, 32, 16)" in text and "(8, 8, 32)" in text and "25,578" in text


def test_predict_gives_probabilities_in_eval_mode():
    net = build_model("vgg", seed=3)
    x = np.random.default_rng(1).standard_normal((5, 32, 32, 3)).astype(np.float32)
    before = net.buffers["bn1.running_mean"].copy()
    probs = net.predict(x, batch_size=2)
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(before, net.buffers["bn1.running_mean"])  # eval: no update


def test_weights_round_trip_through_npz(tmp_path):
    net = build_model("vgg", seed=1)
    net.buffers["bn2.running_var"][...] = 3.0
    net.save(tmp_path / "w.npz")
    other = build_model("vgg", seed=2)
    other.load(tmp_path / "w.npz")
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, other.state_dict()[key])


def test_loading_into_another_shape_names_the_layer_and_both_shapes(tmp_path):
    build_model("seed").save(tmp_path / "w.npz")
    wide = Sequential([Conv2D(3, 8, 3, padding=1), ReLU(), Conv2D(8, 32, 3, padding=1)])
    narrow = Sequential([Conv2D(3, 16, 3, padding=1), ReLU(), Conv2D(16, 32, 3, padding=1)])
    narrow.save(tmp_path / "n.npz")
    with pytest.raises(WeightsMismatchError, match=r"conv1.*'W'.*\(3, 3, 3, 16\).*\(3, 3, 3, 8\)"):
        wide.load(tmp_path / "n.npz")
    with pytest.raises(WeightsMismatchError, match="missing.*dense1"):
        build_model("seed").load(tmp_path / "n.npz")


def test_pickled_weights_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"conv1.W": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="pickle"):
        build_model("seed").load(path)


@pytest.mark.parametrize(
    "name,expected_std",
    [
        ("he", np.sqrt(2 / 288)),
        ("xavier", np.sqrt(2 / (288 + 576))),
        ("normal", 0.01),
        ("unit_normal", 1.0),
    ],
)
def test_initialisers_have_their_scale(name, expected_std):
    w = get_initializer(name)((3, 3, 32, 64), 288, 576, np.random.default_rng(0))
    assert w.std() == pytest.approx(expected_std, rel=0.03)
    assert abs(w.mean()) < 0.05 * expected_std


def test_uniform_initialisers_respect_their_limit():
    for name, limit in [("he_uniform", np.sqrt(6 / 100)), ("xavier_uniform", np.sqrt(6 / 150))]:
        w = get_initializer(name)((100, 50), 100, 50, np.random.default_rng(0))
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit


def test_pytorch_init_draws_weights_and_biases_like_pytorch():
    # PyTorch's Conv2d and Linear draw both from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    conv = Conv2D(32, 64, 3, init="pytorch", rng=np.random.default_rng(0))
    dense = Dense(2048, 10, init="pytorch", rng=np.random.default_rng(0))
    for layer, fan_in in [(conv, 288), (dense, 2048)]:
        bound = 1 / np.sqrt(fan_in)
        for key in ("W", "b"):
            values = layer.params[key]
            assert np.abs(values).max() <= bound
            assert values.std() == pytest.approx(bound / np.sqrt(3), rel=0.3)
    assert conv.params["W"].std() == pytest.approx(np.sqrt(1 / (3 * 288)), rel=0.03)


def test_other_initialisers_start_biases_at_zero():
    for init in ("he", "xavier", "normal"):
        conv = Conv2D(3, 8, 3, init=init, rng=np.random.default_rng(0))
        assert not conv.params["b"].any()


def test_orthogonal_is_orthogonal():
    w = get_initializer("orthogonal")((64, 32), 64, 32, np.random.default_rng(0))
    np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-10)


@pytest.mark.parametrize("c_in,f", [(3, 16), (32, 64)])
def test_orthogonal_works_for_convolutions(c_in, f):
    w = get_initializer("orthogonal")((3, 3, c_in, f), 9 * c_in, 9 * f, np.random.default_rng(0))
    m = w.reshape(-1, f)  # (KH*KW*C_in, F): more rows than columns here
    np.testing.assert_allclose(m.T @ m, np.eye(f), atol=1e-10)


@pytest.mark.parametrize(
    "init",
    [
        "he", "he_uniform", "xavier", "xavier_uniform", "pytorch",
        "normal", "unit_normal", "orthogonal",
    ],
)
@pytest.mark.parametrize("name", ["seed", "vgg", "resnet", "plain", "custom"])
def test_every_initialiser_builds_every_model(name, init):
    net = build_model(name, init=init)
    assert np.isfinite(net.forward(np.zeros((1, 32, 32, 3), np.float32))).all()


def test_reinitialize_redraws_weights_and_zeroes_biases():
    net = Sequential([Flatten(), Dense(12, 4)])
    net.params["dense1.b"][...] = 1.0
    reinitialize(net, "normal", np.random.default_rng(0), std=0.5)
    assert net.params["dense1.W"].std() == pytest.approx(0.5, rel=0.4)
    assert not net.params["dense1.b"].any()


def test_unknown_initialiser_and_model_are_named():
    with pytest.raises(ValueError, match="'hee'"):
        get_initializer("hee")
    with pytest.raises(ValueError, match="'resnet50'"):
        build_model("resnet50")


def test_same_seed_same_weights_different_seed_different():
    a, b, c = build_model("vgg", seed=0), build_model("vgg", seed=0), build_model("vgg", seed=1)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["conv1.W"], c.params["conv1.W"])


@pytest.mark.parametrize("name", ["seed", "vgg", "resnet"])
def test_skipping_the_input_gradient_leaves_parameter_gradients_unchanged(name):
    net = build_model(name, seed=4)
    assert not net.input_grad  # its input is images: built to skip their gradient
    x = np.random.default_rng(2).standard_normal((3, 32, 32, 3)).astype(np.float32)
    dout = np.random.default_rng(3).standard_normal((3, 10)).astype(np.float32)
    net.input_grad = True
    net.forward(x, training=True)
    dx = net.backward(dout)
    full = {k: g.copy() for k, g in net.grads.items()}
    net.input_grad = False
    net.forward(x, training=True)
    assert net.backward(dout) is None and dx.shape == x.shape
    for key, grad in net.grads.items():
        np.testing.assert_array_equal(grad, full[key])
