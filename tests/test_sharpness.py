"""Sharpness, the top Hessian eigenvalue by finite-difference Hessian-vector products and
Lanczos: against an analytic quadratic, the exact Hessian of a tiny network, PyTorch's
double backprop, and the optimiser's own stability threshold."""

import numpy as np
import pytest

from cnn.diagnostics.sharpness import (
    LossGradient,
    hessian_vector_product,
    lanczos_top,
    sharpness,
    stability_threshold,
)
from cnn.layers import BatchNorm2D, Conv2D, Dense, Dropout, Flatten, ReLU
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import SGD


class HalfSquare:
    """L = |logits|² / 2N: on a linear network its Hessian is known in closed form."""

    def forward(self, logits, labels):
        self._logits = logits
        return float(0.5 * (logits ** 2).sum() / len(logits))

    def backward(self):
        return self._logits / len(self._logits)


def tiny_net(rng, bn=False, dropout=False):
    layers = [Conv2D(2, 3, 3, padding=1, rng=rng), *([BatchNorm2D(3)] if bn else []), ReLU(),
              Flatten(), *([Dropout(0.3, rng=rng)] if dropout else []), Dense(48, 4, rng=rng)]
    net = Sequential(layers).to(np.float64)
    net.input_grad = False
    return net


def data(rng, n=12):
    return rng.standard_normal((n, 4, 4, 2)), rng.integers(0, 4, n)


def test_lanczos_finds_the_top_eigenvalue_of_a_known_matrix():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    eigenvalues = np.concatenate([[9.0, 8.5], rng.uniform(-3, 5, 38)])
    a = q @ np.diag(eigenvalues) @ q.T
    found = lanczos_top(lambda v: [a @ v[0]], [rng.standard_normal(40)], 30, 1e-10)
    assert found.value == pytest.approx(9.0, rel=1e-8)
    # Ritz values rise to it, to rounding.
    rises = zip(found.history, found.history[1:], strict=False)
    assert all(b >= a - 1e-12 * abs(a) for a, b in rises)
    assert found.products < 30  # the residual told it when to stop


def test_a_linear_network_on_a_half_square_loss_has_the_analytic_top_eigenvalue():
    # L = |x W|² / 2N: the Hessian in W is (XᵀX / N) ⊗ I, whose top eigenvalue is XᵀX/N's.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 6)) * np.array([3.0, 1, 1, 0.5, 0.5, 0.1])
    net = Sequential([Dense(6, 3, bias=False, rng=rng)]).to(np.float64)
    net.input_grad = False
    exact = np.linalg.eigvalsh(x.T @ x / len(x))[-1]
    found = sharpness(net, HalfSquare(), x, np.zeros(50, int), batch_size=16)
    assert found.value == pytest.approx(exact, rel=1e-6)


def exact_hessian(net, loss_fn, x, y, h=1e-5):
    gradient = LossGradient(net, loss_fn, x, y, batch_size=len(y))
    sizes = [w.size for w in gradient.weights]
    columns = []
    for i in range(sum(sizes)):
        e = np.zeros(sum(sizes))
        e[i] = 1.0
        parts = np.split(e, np.cumsum(sizes)[:-1])
        v = [p.reshape(w.shape) for p, w in zip(parts, gradient.weights, strict=True)]
        plus, minus = gradient(v, h)[1], gradient(v, -h)[1]
        columns.append(np.concatenate([(p - m).ravel() / (2 * h)
                                       for p, m in zip(plus, minus, strict=True)]))
    hessian = np.array(columns)
    return 0.5 * (hessian + hessian.T)


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "batchnorm"])
def test_the_estimate_is_within_a_percent_of_a_tiny_networks_exact_top_eigenvalue(bn):
    rng = np.random.default_rng(2)
    net = tiny_net(rng, bn=bn)
    x, y = data(rng)
    loss = SoftmaxCrossEntropy()
    top = np.linalg.eigvalsh(exact_hessian(net, loss, x, y))[-1]
    found = sharpness(net, loss, x, y, batch_size=12, iterations=40, tol=1e-6)
    assert found.value == pytest.approx(top, rel=0.01)


def test_measuring_changes_nothing_and_dropout_masks_repeat():
    rng = np.random.default_rng(3)
    net = tiny_net(rng, bn=True, dropout=True)
    x, y = data(rng)
    before = {k: v.copy() for k, v in {**net.params, **net.buffers}.items()}
    states = [g.bit_generator.state for _, g in net.named_generators()]
    gradient = LossGradient(net, SoftmaxCrossEntropy(), x, y, batch_size=5)
    first, again = gradient(), gradient()
    assert first[0] == again[0]
    assert all(np.array_equal(a, b) for a, b in zip(first[1], again[1], strict=True))
    sharpness(net, SoftmaxCrossEntropy(), x, y, batch_size=5, iterations=5)
    for key, value in {**net.params, **net.buffers}.items():
        assert np.array_equal(value, before[key]), key
    assert [g.bit_generator.state for _, g in net.named_generators()] == states


def test_float32_networks_are_measured_in_float64_by_default():
    rng = np.random.default_rng(4)
    net = tiny_net(rng)
    x, y = data(rng)
    net.to(np.float32)
    found = sharpness(net, SoftmaxCrossEntropy(), x.astype(np.float32), y, iterations=40,
                      tol=1e-6)
    net64 = tiny_net(np.random.default_rng(4))
    top = np.linalg.eigvalsh(exact_hessian(net64, SoftmaxCrossEntropy(), x, y))[-1]
    assert found.value == pytest.approx(top, rel=0.01)
    assert net.dtype == np.float32


def test_a_hessian_vector_product_is_symmetric_in_its_directions():
    rng = np.random.default_rng(5)
    net = tiny_net(rng)
    x, y = data(rng)
    gradient = LossGradient(net, SoftmaxCrossEntropy(), x, y, batch_size=12)
    u = [rng.standard_normal(w.shape) for w in gradient.weights]
    v = [rng.standard_normal(w.shape) for w in gradient.weights]
    hu = hessian_vector_product(gradient, u, 6e-6)
    hv = hessian_vector_product(gradient, v, 6e-6)
    dot = lambda a, b: sum(float(np.vdot(p, q)) for p, q in zip(a, b, strict=True))  # noqa: E731
    assert dot(hu, v) == pytest.approx(dot(u, hv), rel=1e-5)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True)])
def test_the_threshold_is_where_sgd_on_a_quadratic_starts_to_diverge(momentum, nesterov):
    lr = 0.1
    threshold = stability_threshold(lr, momentum, nesterov)

    def final_size(curvature):
        w = {"w": np.array([1.0])}
        opt = SGD(lr, momentum=momentum, nesterov=nesterov)
        for _ in range(2000):
            opt.step(w, {"w": curvature * w["w"]})
        return abs(float(w["w"][0]))

    assert final_size(threshold * 0.99) < 1.0 < final_size(threshold * 1.01)


def test_the_threshold_refuses_a_rate_of_zero():
    with pytest.raises(ValueError, match="learning rate"):
        stability_threshold(0.0)


def test_the_estimate_agrees_with_pytorch_double_backprop():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    net = tiny_net(rng)
    x, y = data(rng)
    conv, dense = net.sublayers["conv1"], net.sublayers["dense1"]
    weights = [torch.tensor(a, requires_grad=True) for a in
               (conv.params["W"], conv.params["b"], dense.params["W"], dense.params["b"])]
    inputs, labels = torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(y)

    def loss(cw, cb, dw, db):
        kernel = cw.permute(3, 2, 0, 1)  # (k, k, C_in, C_out) -> (C_out, C_in, k, k)
        hidden = torch.relu(torch.nn.functional.conv2d(inputs, kernel, cb, padding=1))
        flat = hidden.permute(0, 2, 3, 1).reshape(len(y), -1)  # NHWC order, as Flatten
        return torch.nn.functional.cross_entropy(flat @ dw + db, labels)

    hessian = torch.autograd.functional.hessian(loss, tuple(weights))
    sizes = [w.numel() for w in weights]
    full = torch.cat([torch.cat([hessian[i][j].reshape(sizes[i], sizes[j])
                                 for j in range(4)], 1) for i in range(4)], 0)
    top = float(torch.linalg.eigvalsh(full)[-1])
    found = sharpness(net, SoftmaxCrossEntropy(), x, y, iterations=40, tol=1e-6)
    assert found.value == pytest.approx(top, rel=0.01)
