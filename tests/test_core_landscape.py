"""The loss on a plane through the trained weights (cnn.diagnostics.landscape): filter
normalisation, the grid's centre, a quadratic whose grid is known, seeds, and the network
put back."""

import numpy as np
import pytest

from cnn.diagnostics.landscape import (
    filter_normalized,
    grid_axis,
    loss_landscape,
    random_directions,
)
from cnn.layers import Dense
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.training import evaluate, train_step

LAYERS = [{"type": "conv", "out": 4}, {"type": "batchnorm"}, {"type": "relu"},
          {"type": "global_avgpool"}]


def _trained_net():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    net = build_model("custom", layers=LAYERS, input_shape=(8, 8, 3), num_classes=3, seed=1)
    loss_fn, optimizer = SoftmaxCrossEntropy(), SGD(lr=0.1)
    for _ in range(5):
        train_step(net, loss_fn, optimizer, x, y)
    return net, loss_fn, x, y


def test_grid_axis_is_symmetric_and_holds_zero_exactly():
    axis = grid_axis(21, 1.0)
    assert len(axis) == 21 and axis[0] == -1.0 and axis[-1] == 1.0 and axis[10] == 0.0
    assert not np.signbit(axis[10])  # 0.0, not -0.0, in the JSON
    assert 0.3 in axis
    with pytest.raises(ValueError, match="points must be >= 2, got 1"):
        grid_axis(1, 1.0)
    with pytest.raises(ValueError, match="span must be > 0"):
        grid_axis(5, 0.0)


def test_each_direction_filter_has_its_weight_filter_norm_and_one_axis_params_are_zero():
    net, *_ = _trained_net()
    d1, d2 = random_directions(net, seed=3)
    assert d1.keys() == net.params.keys()
    for name, w in net.params.items():
        for d in (d1, d2):
            assert d[name].shape == w.shape and d[name].dtype == w.dtype
            if w.ndim == 1:  # conv bias, batch norm's gamma and beta, dense bias
                assert not d[name].any(), name
                continue
            axes = tuple(range(w.ndim - 1))  # all but the filter (output) axis
            np.testing.assert_allclose(np.sqrt(np.sum(d[name] ** 2, axis=axes)),
                                       np.sqrt(np.sum(w ** 2, axis=axes)), rtol=1e-5)
    assert not np.allclose(d1["conv1.W"], d2["conv1.W"])  # two draws, not one twice
    # A filter of zero weights gets a zero direction rather than NaN.
    w = np.ones((3, 3, 2, 4), np.float32)
    w[..., 1] = 0.0
    d = filter_normalized(w, np.random.default_rng(0).standard_normal(w.shape))
    assert np.isfinite(d).all() and not d[..., 1].any()
    np.testing.assert_allclose(np.linalg.norm(d[..., 0]), np.linalg.norm(w[..., 0]), rtol=1e-5)


def test_the_centre_is_the_trained_loss_and_the_network_is_put_back_exactly():
    net, loss_fn, x, y = _trained_net()
    state = net.state_dict()
    directions = random_directions(net, seed=0)
    axis = grid_axis(5, 1.0)
    found = loss_landscape(net, loss_fn, x, y, directions, axis, axis, batch_size=25)
    batches = [(x[i:i + 25], y[i:i + 25]) for i in range(0, 60, 25)]
    trained = evaluate(net, loss_fn, batches)
    assert found.at(0.0, 0.0) == trained.loss  # the same passes on the same weights
    assert found.acc[2, 2] == trained.acc
    assert found.loss.shape == (5, 5) and found.images == 60
    assert len(np.unique(found.loss)) == 25
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    # Deterministic with a seed: the same directions and grid again; another seed differs.
    again = loss_landscape(net, loss_fn, x, y, random_directions(net, seed=0), axis, axis, 25)
    np.testing.assert_array_equal(again.loss, found.loss)
    other = loss_landscape(net, loss_fn, x, y, random_directions(net, seed=1), axis, axis, 25)
    assert not np.array_equal(other.loss, found.loss)


def test_weights_are_put_back_when_the_evaluation_fails():
    net, loss_fn, x, y = _trained_net()
    state = net.state_dict()
    directions = random_directions(net, seed=0)

    class Failing(SoftmaxCrossEntropy):
        def forward(self, logits, labels):
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        loss_landscape(net, Failing(), x, y, directions, [0.5], [0.5])
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    with pytest.raises(ValueError, match="no values for"):
        loss_landscape(net, loss_fn, x, y, ({}, {}), [0.0], [0.0])


class _SquaredNorm(SoftmaxCrossEntropy):
    """The 'loss' 0.5 * |logits - target|^2 summed over a row, averaged over rows."""

    def forward(self, logits, targets):
        return float(0.5 * np.mean(np.sum((logits.astype(np.float64) - targets) ** 2, axis=1)))


def test_a_quadratic_gives_the_grid_its_formula_predicts():
    # One dense layer without bias on a single input row e: logits = W[0], so the loss is
    # 0.5 * |W[0] + a d1[0] + b d2[0] - t|^2, a quadratic in (a, b) known in closed form.
    layer = Dense(1, 4, bias=False, rng=np.random.default_rng(0), dtype=np.float64)
    net = Sequential([layer])
    net.params["dense1.W"][...] = [[1.0, -2.0, 0.5, 3.0]]
    x = np.ones((1, 1), np.float64)
    target = np.array([[0.0, 1.0, 0.0, -1.0]])
    d1, d2 = random_directions(net, seed=7)
    # A dense layer's filter is one output unit's weights: here a single number each, so
    # filter normalisation gives each entry the weight's magnitude with a random sign.
    np.testing.assert_allclose(np.abs(d1["dense1.W"]), np.abs(net.params["dense1.W"]))
    axis = grid_axis(5, 1.0)
    found = loss_landscape(net, _SquaredNorm(), x, target, (d1, d2), axis, axis)
    w, u, v = net.params["dense1.W"][0], d1["dense1.W"][0], d2["dense1.W"][0]
    for i, a in enumerate(axis):
        for j, b in enumerate(axis):
            expected = 0.5 * np.sum((w + a * u + b * v - target[0]) ** 2)
            assert found.loss[i, j] == pytest.approx(expected, rel=1e-12)
