"""The loss along the line between two weight settings (cnn.diagnostics.interpolation):
the alphas, the blended weights, and losses that equal the two networks' own at 0 and 1."""

import numpy as np
import pytest

from cnn.data import BatchIterator
from cnn.diagnostics.interpolation import (
    interpolate_state,
    line_alphas,
    loss_along_line,
    recompute_batchnorm,
)
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import evaluate, train_step

LAYERS = [{"type": "conv", "out": 4}, {"type": "batchnorm"}, {"type": "relu"},
          {"type": "global_avgpool"}]


def test_alphas_run_past_both_ends_and_hold_0_and_1_exactly():
    alphas = line_alphas(29, 0.2)
    assert len(alphas) == 29 and alphas[0] == -0.2 and alphas[-1] == 1.2
    assert 0.0 in alphas and 1.0 in alphas and 0.15 in alphas
    assert np.all(np.diff(alphas) > 0)
    assert not np.signbit(alphas[alphas == 0.0]).any()  # 0.0, not -0.0 in the JSON
    # 0 and 1 are added when the spacing misses them.
    assert set(line_alphas(4, 0.25)) == {-0.25, 0.0, 0.25, 0.75, 1.0, 1.25}
    with pytest.raises(ValueError, match="points must be >= 2, got 1"):
        line_alphas(1, 0.2)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        line_alphas(5, -0.1)


def test_weights_blend_linearly_and_running_variances_stay_non_negative():
    theta0 = {"bn.running_var": np.array([1.0, 1.0], np.float32),
              "conv.W": np.array([0.0, 2.0], np.float32)}
    theta1 = {"bn.running_var": np.array([0.1, 3.0], np.float32),
              "conv.W": np.array([4.0, 2.0], np.float32)}
    mid = interpolate_state(theta0, theta1, 0.25)
    np.testing.assert_allclose(mid["conv.W"], [1.0, 2.0])
    assert mid["conv.W"].dtype == np.float32
    np.testing.assert_allclose(interpolate_state(theta0, theta1, -0.5)["conv.W"], [-2.0, 2.0])
    # 1.5 past the trained end: -0.5 * 1 + 1.5 * 0.1 < 0 would be a negative variance.
    np.testing.assert_allclose(interpolate_state(theta0, theta1, 1.5)["bn.running_var"],
                               [0.0, 4.0])
    with pytest.raises(ValueError, match="differ in keys"):
        interpolate_state(theta0, {"conv.W": theta1["conv.W"]}, 0.5)
    with pytest.raises(ValueError, match="conv.W: shapes differ"):
        interpolate_state(theta0, {**theta1, "conv.W": np.zeros(3, np.float32)}, 0.5)


def test_losses_at_0_and_1_are_the_two_networks_own_and_the_network_is_put_back():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    net = build_model("custom", layers=LAYERS, input_shape=(8, 8, 3), num_classes=3, seed=1)
    loss_fn = SoftmaxCrossEntropy()
    batches = {"a": BatchIterator(x[:24], y[:24], 7), "b": BatchIterator(x[24:], y[24:], 16)}
    theta0 = net.state_dict()
    start = {k: evaluate(net, loss_fn, b).loss for k, b in batches.items()}
    opt = SGD(0.1, momentum=0.9)
    for _ in range(5):  # moves the weights and the batch-norm running statistics
        train_step(net, loss_fn, opt, x, y)
    theta1 = net.state_dict()
    assert not np.allclose(theta0["bn1.running_mean"], theta1["bn1.running_mean"])
    end = {k: evaluate(net, loss_fn, b).loss for k, b in batches.items()}

    line = loss_along_line(net, loss_fn, theta0, theta1, line_alphas(5, 0.5), batches)
    for k in batches:
        assert line.at(0.0, k) == pytest.approx(start[k], rel=1e-6)
        assert line.at(1.0, k) == pytest.approx(end[k], rel=1e-6)
        assert line.loss[k].shape == line.acc[k].shape == line.alphas.shape
        assert np.isfinite(line.loss[k]).all()
    assert start["a"] != pytest.approx(end["a"], rel=1e-3)  # the two ends do differ
    for key, value in net.state_dict().items():  # the trained network is as it was
        np.testing.assert_array_equal(value, theta1[key])


def test_recomputed_statistics_are_the_average_of_the_batches_and_used_at_every_alpha():
    rng = np.random.default_rng(1)
    x = (3.0 + 2.0 * rng.standard_normal((30, 4, 4, 2))).astype(np.float32)
    y = rng.integers(0, 2, 30)
    layers = [{"type": "batchnorm"}, {"type": "dropout", "p": 0.3}, {"type": "global_avgpool"}]
    net = build_model("custom", layers=layers, input_shape=(4, 4, 2), num_classes=2, seed=0)
    (bn,) = [leaf for name, leaf in net.named_leaves() if name.startswith("bn")]
    (drop,) = [leaf for name, leaf in net.named_leaves() if name.startswith("dropout")]
    drop_state = drop.rng.bit_generator.state
    batches = BatchIterator(x, y, 10)
    assert recompute_batchnorm(net, batches) == 3
    chunks = [x[i:i + 10].reshape(-1, 2).astype(np.float64) for i in (0, 10, 20)]
    np.testing.assert_allclose(bn.buffers["running_mean"],
                               np.mean([c.mean(axis=0) for c in chunks], axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"],
                               np.mean([c.var(axis=0, ddof=1) for c in chunks], axis=0),
                               rtol=1e-4)
    assert bn.momentum == 0.1 and drop.rng.bit_generator.state == drop_state

    # Along the line, each alpha's loss is that of its weights with recomputed statistics.
    loss_fn = SoftmaxCrossEntropy()
    theta0 = net.state_dict()
    # The far end with weights scaled and running statistics that are far off.
    theta1 = {k: v * 1.5 if k.endswith(".W") else v + 5.0 if k.endswith("running_mean")
              else v for k, v in theta0.items()}
    line = loss_along_line(net, loss_fn, theta0, theta1, [0.0, 1.0], {"all": batches},
                           recompute_from=batches)
    net.load_state_dict(theta1)
    as_stored = evaluate(net, loss_fn, batches).loss
    recompute_batchnorm(net, batches)
    recomputed = evaluate(net, loss_fn, batches).loss
    assert line.at(1.0, "all") == pytest.approx(recomputed, rel=1e-6)
    assert recomputed != pytest.approx(as_stored, rel=1e-2)
