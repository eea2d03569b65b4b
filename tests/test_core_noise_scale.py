"""The gradient noise scale (cnn.diagnostics.noise_scale) against per-example gradients
computed one example at a time, and training left bit for bit as it was."""

import numpy as np
import pytest

from cnn import parallel
from cnn.data import BatchIterator
from cnn.diagnostics.noise_scale import NoiseScaleMonitor
from cnn.layers import Dense, ReLU
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.schedules import make_schedule
from cnn.training import fit

N = 40


def _problem():
    """A two-layer float64 network without batch norm, on N examples of 5 features."""
    rng = np.random.default_rng(0)
    net = Sequential([Dense(5, 8, rng=rng, dtype=np.float64), ReLU(),
                      Dense(8, 3, rng=rng, dtype=np.float64)])
    x = rng.standard_normal((N, 5))
    y = rng.integers(0, 3, N)
    return net, SoftmaxCrossEntropy(), x, y


def _per_example_gradients(net, loss_fn, x, y) -> np.ndarray:
    """(N, P): each example's gradient, one backward pass each."""
    rows = []
    for i in range(len(y)):
        loss_fn.forward(net.forward(x[i:i + 1], training=True), y[i:i + 1])
        net.backward(loss_fn.backward())
        rows.append(np.concatenate([g.ravel() for g in net.grads.values()]))
    return np.array(rows)


def _step(net, loss_fn, monitor, x, y, step=1):
    loss_fn.forward(net.forward(x, training=True), y)
    net.backward(loss_fn.backward())
    monitor.on_batch_end(step, 0.0, 0.0)


@pytest.mark.parametrize("batch", [10, 11])
def test_one_step_gives_the_two_size_estimates_of_its_halves_exactly(batch):
    net, loss_fn, x, y = _problem()
    g = _per_example_gradients(net, loss_fn, x, y)[:batch]  # (B, P)
    monitor = NoiseScaleMonitor(net)
    _step(net, loss_fn, monitor, x[:batch], y[:batch])
    first = batch // 2
    big = np.sum(g.mean(axis=0) ** 2)
    small = 0.5 * (np.sum(g[:first].mean(axis=0) ** 2) + np.sum(g[first:].mean(axis=0) ** 2))
    inv_b = 0.5 * (1 / first + 1 / (batch - first))
    trace, grad_sq = monitor.last
    assert trace == pytest.approx((small - big) / (inv_b - 1 / batch), rel=1e-9)
    assert grad_sq == pytest.approx((batch * big - small / inv_b) / (batch - 1 / inv_b),
                                    rel=1e-9)
    # The batch gradient the optimiser reads is the network's own, untouched.
    np.testing.assert_allclose(np.concatenate([v.ravel() for v in net.grads.values()]),
                               g.mean(axis=0), rtol=1e-12)


def test_the_epoch_estimate_converges_to_the_exact_noise_scale():
    net, loss_fn, x, y = _problem()
    g = _per_example_gradients(net, loss_fn, x, y)  # (N, P) at these fixed weights
    mean = g.mean(axis=0)
    exact_trace = np.mean(np.sum((g - mean) ** 2, axis=1))  # tr of the per-example covariance
    exact_grad_sq = np.sum(mean ** 2)
    monitor = NoiseScaleMonitor(net)
    rng = np.random.default_rng(1)
    for step in range(1, 3001):  # batches drawn with replacement: the estimator's i.i.d. case
        index = rng.integers(0, N, 8)
        _step(net, loss_fn, monitor, x[index], y[index], step)
    monitor.on_epoch_end(1, {})
    (estimate,) = monitor.history
    assert estimate.steps == 3000 and estimate.step == 3000
    assert estimate.trace == pytest.approx(exact_trace, rel=0.05)
    assert estimate.grad_sq == pytest.approx(exact_grad_sq, rel=0.05)
    assert estimate.b_simple == pytest.approx(exact_trace / exact_grad_sq, rel=0.08)
    assert 1 < exact_trace / exact_grad_sq < 100  # neither ratio's part is negligible


def test_a_batch_of_one_gives_no_estimate_and_close_detaches():
    net, loss_fn, x, y = _problem()
    monitor = NoiseScaleMonitor(net)
    _step(net, loss_fn, monitor, x[:1], y[:1])
    assert monitor.last is None
    monitor.on_epoch_end(1, {})
    assert monitor.history == []
    monitor.close()
    assert all(not layer.observers for _, layer in net.named_leaves())


LAYERS = [{"type": "conv", "out": 6}, {"type": "batchnorm"}, {"type": "relu"},
          {"type": "maxpool"}, {"type": "dropout", "p": 0.2}, {"type": "flatten"},
          {"type": "dense", "out": 3}]


def _train(with_monitor: bool):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((52, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 52)
    net = build_model("custom", layers=LAYERS, input_shape=(8, 8, 3), num_classes=3, seed=3)
    batches = BatchIterator(x, y, 16, shuffle=True, rng=np.random.default_rng(4))
    monitor = NoiseScaleMonitor(net) if with_monitor else None
    with parallel.threads(2):
        history = fit(net, SoftmaxCrossEntropy(), SGD(lr=0.05, momentum=0.9),
                      make_schedule("constant", 0.05, 8), batches, 2,
                      callbacks=[monitor] if monitor else [])
    return net, history, monitor


def test_training_is_bit_identical_with_the_monitor_on_or_off():
    plain, plain_history, _ = _train(False)
    watched, history, monitor = _train(True)
    for key, value in plain.state_dict().items():  # weights and batch-norm statistics
        np.testing.assert_array_equal(watched.state_dict()[key], value, err_msg=key)
    for key, value in plain.grads.items():
        np.testing.assert_array_equal(watched.grads[key], value, err_msg=key)
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in plain_history]
    assert len(monitor.history) == 2 and [e.step for e in monitor.history] == [4, 8]
    assert all(np.isfinite([e.trace, e.grad_sq]).all() for e in monitor.history)
