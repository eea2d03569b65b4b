"""The module protocol (cnn/layers/base.py): one backward signature, one walk of the tree,
observers instead of replaced methods, inference folded by each module, and a new block
written as one class alone."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import cnn.layers
import cnn.models  # noqa: F401  registers the families, whose layers are all in cnn.layers
from cnn.diagnostics.statistics import layer_statistics
from cnn.gradcheck import check_layer, check_network
from cnn.layers import BatchNorm2D, Block, Conv2D, Dense, Dropout, GlobalAvgPool, Layer, ReLU
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.training import train_step

ROOT = Path(__file__).resolve().parents[1]


def _subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *_subclasses(direct)}}


def test_every_layer_class_has_the_one_forward_and_backward_signature():
    classes = {cls for cls in _subclasses(Layer) if cls.__module__.startswith("cnn.")}
    assert {Conv2D, Dense, BatchNorm2D, ReLU, Sequential, cnn.layers.ResidualBlock} <= classes
    for cls in classes:
        backward = list(inspect.signature(cls.backward).parameters)
        assert backward == ["self", "dout"], (cls, backward)
        forward = inspect.signature(cls.forward).parameters
        assert list(forward) == ["self", "x", "training"], cls
        assert forward["training"].default is False, cls


def _python_files() -> list[Path]:
    return [p for folder in ("cnn", "experiments") for p in (ROOT / folder).rglob("*.py")]


def test_no_forward_or_backward_is_assigned_outside_its_class():
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
            for target in targets:
                assert not (isinstance(target, ast.Attribute)
                            and target.attr in ("forward", "backward")), \
                    f"{path.relative_to(ROOT)}:{node.lineno} assigns .{target.attr}"


def test_the_inference_path_switches_on_no_type():
    """Inference asks each module (infer, fold, channel_affine, in_place_activation)."""
    names = {"infer", "fold", "infer_in_order", "channel_affine", "in_place_activation"}
    seen = 0
    for path in (ROOT / "cnn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in names:
                seen += 1
                calls = {c.func.id for c in ast.walk(node)
                         if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
                assert not calls & {"isinstance", "type"}, f"{path.name}: {node.name}"
    assert seen >= 8


def test_one_walk_names_every_module_parameter_and_generator():
    branch = Sequential([Conv2D(2, 2, 3, padding=1), Dropout(0.5)], names=["conv", "drop"])
    net = Sequential([branch, GlobalAvgPool(), Dense(2, 3)], names=["stage", None, None])
    assert [name for name, _ in net.named_modules()] == [
        "", "stage", "stage.conv", "stage.drop", "gap1", "dense1"]
    assert [name for name, _ in net.named_leaves()] == [
        "stage.conv", "stage.drop", "gap1", "dense1"]
    assert list(net.params) == ["stage.conv.W", "stage.conv.b", "dense1.W", "dense1.b"]
    assert [id(p) for p in net.parameters()] == [id(p) for p in net.params.values()]
    assert [name for name, _ in net.named_generators()] == ["stage.drop.rng"]
    assert dict(net.children())["stage"] is branch


class ScaledResidual(Block):
    """x + alpha * relu(bn(conv(x))): a residual block whose branch is scaled, written as one
    class with nothing added anywhere else. (N, H, W, C) -> (N, H, W, C)."""

    def __init__(self, channels: int, alpha: float, rng: np.random.Generator) -> None:
        branch = Sequential([Conv2D(channels, channels, 3, padding=1, bias=False, rng=rng),
                             BatchNorm2D(channels), ReLU()])
        super().__init__({"branch": branch})
        self.alpha = alpha

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x + self.alpha * self.sublayers["branch"](x, training)  # (N, H, W, C)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        dbranch = self.sublayers["branch"].backprop(self.alpha * dout)  # (N, H, W, C)
        return dout + dbranch if self.input_grad else None

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x + self.alpha * self.sublayers["branch"].infer(x)  # conv, bn and relu as one


def _toy_network(dtype=np.float32) -> Sequential:
    rng = np.random.default_rng(0)
    net = Sequential([Conv2D(3, 4, 3, padding=1, rng=rng), ScaledResidual(4, 0.5, rng),
                      GlobalAvgPool(), Dense(4, 3, rng=rng)],
                     names=[None, "scaled", None, None]).to(dtype)
    net.input_grad = False
    return net


def test_a_toy_block_trains_gradient_checks_infers_and_is_measured():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 6, 6, 3)).astype(np.float32), rng.integers(0, 3, 8)
    net, loss_fn, opt = _toy_network(), SoftmaxCrossEntropy(), SGD(0.1, momentum=0.9)
    losses = [train_step(net, loss_fn, opt, x, y)[0] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]

    # Gradients, in float64: the block alone and inside the network.
    block = ScaledResidual(2, 0.5, np.random.default_rng(2)).to(np.float64)
    errors = check_layer(block, rng.standard_normal((2, 4, 4, 2)))
    assert max(errors.values()) < 1e-6, errors
    errors = check_network(_toy_network(np.float64), x.astype(np.float64), y, max_checks=8)
    assert max(errors.values()) < 1e-6, errors

    # Inference through its own folding: the branch's convolution takes bn and relu in.
    expected = net.forward(x, training=False)
    np.testing.assert_allclose(net.infer(x), expected, rtol=1e-5, atol=1e-6)
    branch = net.sublayers["scaled"].sublayers["branch"]
    assert branch.layers[0].fold(branch.layers[1:])[1] == 2

    stats = layer_statistics(net, loss_fn, x, y).metrics()
    for key in ("scaled.branch.conv1.act_mean", "scaled.branch.relu1.dead_frac",
                "scaled.branch.conv1.grad_norm"):
        assert np.isfinite(stats[key]), key


def test_an_observer_sees_every_pass_and_stops_when_told():
    seen = []

    class Watch(cnn.layers.base.Observer):
        def forward_end(self, layer, x, out):
            seen.append(("forward", type(layer).__name__, out.shape))

        def backward_end(self, layer, dout, dx):
            seen.append(("backward", type(layer).__name__, dx is None))

    net = _toy_network()
    stops = [leaf.observe(Watch()) for _, leaf in net.named_leaves()]
    x = np.ones((2, 6, 6, 3), dtype=np.float32)
    net.backward(np.ones_like(net.forward(x, training=True)))
    assert [s[1] for s in seen] == ["Conv2D", "Conv2D", "BatchNorm2D", "ReLU", "GlobalAvgPool",
                                    "Dense", "Dense", "GlobalAvgPool", "ReLU", "BatchNorm2D",
                                    "Conv2D", "Conv2D"]
    assert seen[-1] == ("backward", "Conv2D", True)  # the first layer skipped dx
    for stop in stops:
        stop()
    seen.clear()
    net.forward(x)
    assert seen == []


@pytest.mark.parametrize("flag", [True, False])
def test_input_grad_reaches_the_layers_that_see_the_input(flag):
    block = cnn.layers.ResidualBlock(2, 4, stride=2)
    block.input_grad = flag
    assert [block.sublayers[n].input_grad for n in ("conv1", "shortcut.conv", "conv2")] == [
        flag, flag, True]
