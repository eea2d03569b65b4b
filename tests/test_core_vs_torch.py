"""Optional: the NumPy networks agree with PyTorch twins built from them.

Skipped when PyTorch is not installed (`pip install torch==2.13.0` here).
"""

import numpy as np
import pytest

from cnn.layers import BatchNorm1D, Conv2D, Dense, ResidualBlock
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD, AdamW

torch = pytest.importorskip("torch")
from experiments.pytorch.twin import nhwc_to_nchw, to_torch  # noqa: E402


@pytest.mark.torch
@pytest.mark.parametrize("name", ["seed", "vgg"])
def test_forward_and_gradients_match_pytorch(name):
    net = build_model(name, seed=0, dtype=np.float64)
    twin = to_torch(net).double().train()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 32, 32, 3)), rng.integers(0, 10, 6)

    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x, training=True)
    loss = loss_fn.forward(logits, y)
    net.backward(loss_fn.backward())

    torch_logits = twin(nhwc_to_nchw(x))
    torch_loss = torch.nn.functional.cross_entropy(torch_logits, torch.from_numpy(y))
    torch_loss.backward()

    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=1e-9, atol=1e-10)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    first_conv = twin[0].weight.grad.numpy().transpose(2, 3, 1, 0)  # (F, C, KH, KW) -> ours
    np.testing.assert_allclose(net.grads["conv1.W"], first_conv, rtol=1e-8, atol=1e-12)
    head = twin[len(twin) - 1].weight.grad.numpy().T
    np.testing.assert_allclose(net.grads["dense1.W"], head, rtol=1e-8, atol=1e-12)


@pytest.mark.torch
def test_a_fused_network_has_the_twin_of_the_unfused_one():
    net = build_model("vgg", widths=[4, 8], fuse=True, dtype=np.float64)
    twin = to_torch(net).double().train()
    x = np.random.default_rng(1).standard_normal((4, 32, 32, 3))
    # The twin of the fused layer is batch norm then ReLU, not batch norm alone.
    assert [type(m).__name__ for m in twin[1]] == ["BatchNorm2d", "ReLU"]
    np.testing.assert_allclose(net.forward(x, training=True), twin(nhwc_to_nchw(x)).detach(),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize(
    "ours,theirs",
    [
        (
            lambda: SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
        ),
        (
            lambda: AdamW(1e-3, weight_decay=0.01),
            lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
        ),
    ],
    ids=["sgd-nesterov-wd", "adamw"],
)
def test_training_trajectory_matches_pytorch(ours, theirs):
    """Same network, data and optimiser: the two losses agree step for step."""
    net = build_model("seed", seed=0, dtype=np.float64)
    twin = to_torch(net).double()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 32, 32, 3)), rng.integers(0, 10, 16)
    tx, ty = nhwc_to_nchw(x), torch.from_numpy(y)
    opt, topt, loss_fn = ours(), theirs(twin.parameters()), SoftmaxCrossEntropy()
    for _ in range(15):
        loss = loss_fn.forward(net.forward(x, training=True), y)
        net.backward(loss_fn.backward())
        opt.step(net.params, net.grads)
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(twin(tx), ty)
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-9)


def leaf_twins(net, twin):
    """(our name, our leaf, its PyTorch module) for every leaf, blocks' included."""
    for (name, layer), module in zip(net.named_layers(), twin, strict=True):
        if not isinstance(layer, ResidualBlock):
            yield name, layer, module
            continue
        paired = [*zip(layer.main_names, module.main, strict=True), ("act2", module.act)]
        if module.shortcut is not None:
            paired += zip(layer.shortcut_names, module.shortcut, strict=True)
        for inner, m in paired:
            yield f"{name}.{inner}", layer.sublayers[inner], m


def torch_grads(net, twin):
    """PyTorch's gradients and running statistics under our keys, in our layouts."""
    out = {}
    for name, leaf, m in leaf_twins(net, twin):
        if isinstance(leaf, Conv2D):
            out[f"{name}.W"] = m.weight.grad.numpy().transpose(2, 3, 1, 0)  # (F, C, KH, KW)
        elif isinstance(leaf, Dense):
            out[f"{name}.W"] = m.weight.grad.numpy().T
        elif isinstance(leaf, BatchNorm1D):  # BatchNorm2D too
            out[f"{name}.gamma"] = m.weight.grad.numpy()
            out[f"{name}.running_mean"] = m.running_mean.numpy()
            out[f"{name}.running_var"] = m.running_var.numpy()
        if "b" in leaf.params:
            out[f"{name}.b"] = m.bias.grad.numpy()
        if "beta" in leaf.params:
            out[f"{name}.beta"] = m.bias.grad.numpy()
    return out


@pytest.mark.torch
@pytest.mark.parametrize("name,knobs", [
    ("resnet", {"depth": 8}),
    ("plain", {"depth": 8}),
    ("resnet", {"depth": 14, "widths": [4, 8, 8], "norm": "none", "activation": "leaky_relu"}),
], ids=["resnet8", "plain8", "resnet14-none-leaky"])
def test_residual_networks_match_pytorch(name, knobs):
    """Logits, loss, the input gradient and every parameter gradient and running statistic."""
    net = build_model(name, seed=0, input_shape=(12, 12, 3), dtype=np.float64, **knobs)
    net.input_grad = True  # compared with PyTorch's input gradient too
    twin = to_torch(net).double().train()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 12, 12, 3)), rng.integers(0, 10, 6)

    loss_fn = SoftmaxCrossEntropy()
    logits = net.forward(x, training=True)
    loss = loss_fn.forward(logits, y)
    dx = net.backward(loss_fn.backward())

    tx = nhwc_to_nchw(x).requires_grad_()
    torch_logits = twin(tx)
    torch_loss = torch.nn.functional.cross_entropy(torch_logits, torch.from_numpy(y))
    torch_loss.backward()

    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=1e-9, atol=1e-10)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-8, atol=1e-12)
    theirs = torch_grads(net, twin)
    ours = {**net.grads, **net.buffers}
    assert theirs.keys() == ours.keys()
    for key, value in theirs.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-8, atol=1e-12, err_msg=key)
