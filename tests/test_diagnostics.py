"""The diagnostics name the cause of a run that cannot train, and pass a healthy one."""

import numpy as np
import pytest

from cnn.data import Normalizer
from cnn.diagnostics import (
    FAIL,
    PASS,
    WARN,
    LayerMonitor,
    check_gradients,
    health_checks,
    health_report,
    layer_statistics,
    verdict,
)
from cnn.layers import ReLU
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.schedules import Constant
from cnn.training import fit

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def images(cifar10):
    x, y = cifar10.x_train[:64], cifar10.y_train[:64]
    return Normalizer().fit(x)(x), y


def run_checks(net, images, lr):
    x, y = images
    return health_checks(
        net, SoftmaxCrossEntropy(), lambda: SGD(lr, momentum=0.9, nesterov=True), x, y, 10
    )


def by_name(checks, prefix):
    return next(c for c in checks if c.name.startswith(prefix))


@pytest.mark.slow
def test_a_healthy_network_passes_every_check(images):
    checks, stats = run_checks(build_model("vgg", seed=0), images, lr=0.01)
    assert verdict(checks) == PASS, health_report(checks)
    assert {"conv1.act_std", "relu1.dead_frac", "conv1.grad_norm"} <= set(stats.metrics())


@pytest.mark.slow  # the health checks' memorisation trains 200 steps
def test_unit_normal_init_is_blamed_on_the_initial_scale(images):
    checks, _ = run_checks(build_model("seed", init="unit_normal", seed=0), images, lr=0.01)
    initial = by_name(checks, "initial loss")
    assert initial.status == FAIL and "initial weights far too large" in initial.cause
    assert verdict(checks) == FAIL
    assert health_report(checks).startswith("health: FAIL - most likely: initial weights")


@pytest.mark.slow  # the health checks' memorisation trains 200 steps
def test_learning_rate_of_100_is_blamed_on_the_learning_rate(images):
    checks, _ = run_checks(build_model("seed", seed=0), images, lr=100.0)
    assert by_name(checks, "initial loss").status != FAIL  # the network itself is not blamed
    assert by_name(checks, "largest update-to-weight").status == FAIL
    assert "learning rate too high" in health_report(checks).splitlines()[0]
    memorise = by_name(checks, "memorise")
    assert memorise.status == WARN and "too high" in memorise.cause


@pytest.mark.slow  # the health checks' memorisation trains 200 steps
def test_memorising_with_label_smoothing_passes_near_the_lowest_loss_it_allows(images):
    """Smoothing 0.1 keeps the loss above 0.50 even when every image is memorised."""
    x, y = images
    loss_fn = SoftmaxCrossEntropy(0.1)
    target = np.full(10, 0.01)
    target[3] = 0.91
    # The lowest loss is reached by logits log(target): it is the target's entropy.
    assert loss_fn.minimum(10) == pytest.approx(
        loss_fn.forward(np.log(target)[None], np.array([3])), rel=1e-12)
    assert loss_fn.minimum(10) == pytest.approx(0.5003, abs=1e-4)
    assert SoftmaxCrossEntropy().minimum(10) == 0.0
    checks, _ = health_checks(build_model("seed", seed=0), loss_fn,
                              lambda: SGD(0.01, momentum=0.9, nesterov=True), x, y, 10)
    memorise = by_name(checks, "memorise")
    assert memorise.status == PASS, memorise.cause


def test_a_broken_layer_gradient_is_found_and_located(images):
    class HalfGradientReLU(ReLU):
        def backward(self, dout):
            return 0.5 * super().backward(dout)

    net = build_model("seed", seed=0)
    net.sublayers["relu1"] = HalfGradientReLU()  # conv1's gradients come out wrong
    x, y = images
    check = check_gradients(net, SoftmaxCrossEntropy(), x[:4], y[:4])
    assert check.status == FAIL and "gradient bug" in check.cause and "conv1" in check.cause
    assert (
        check_gradients(build_model("seed", seed=0), SoftmaxCrossEntropy(), x[:4], y[:4]).status
        == PASS
    )


@pytest.mark.slow  # the health checks' memorisation trains 200 steps
def test_std_001_init_is_flagged_as_vanishing(images):
    checks, _ = run_checks(build_model("seed", init="normal", seed=0), images, lr=0.01)
    assert any(c.status == WARN and "vanishing" in c.cause for c in checks)


@pytest.mark.slow  # the health checks' memorisation trains 200 steps
def test_diagnosing_leaves_the_network_untouched(images):
    net = build_model("vgg", seed=0)
    before = net.state_dict()
    run_checks(net, images, lr=0.01)
    layer_statistics(net, SoftmaxCrossEntropy(), *images)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_layer_monitor_records_each_epoch(images):
    x, y = images
    net = build_model("seed", seed=0)
    seen = []
    monitor = LayerMonitor(
        net, SoftmaxCrossEntropy(), x[:32], y[:32], on_stats=lambda e, s: seen.append(e)
    )
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    fit(net, SoftmaxCrossEntropy(), SGD(0.01), Constant(0.01), batches, 2, callbacks=[monitor])
    assert seen == [1, 2] and len(monitor.history) == 2
    stats = monitor.history[-1]
    assert 0 < stats.layers["conv1"].update_ratio < 0.1
    assert stats.layers["relu1"].dead_frac < 0.5 and stats.layers["relu1"].grad_norm is None
    assert {"conv2.act_std", "dense1.grad_norm", "conv1.update_ratio"} <= set(stats.metrics())


@pytest.mark.slow  # no training: a gradient check of the full-size vgg (over a minute)
def test_a_kink_crossed_by_the_perturbation_is_not_called_a_bug(cifar10):
    """vgg on these images puts a ReLU input within 1e-6 of zero for bn1.beta (seen in a run)."""
    from experiments.config import compose_config, register_configs
    from experiments.runs.build import build_run

    register_configs()
    root = str(cifar10.source.parent)
    run = build_run(
        compose_config(["experiment=vgg_subset", "init=he", "trainer.seed=0", f"data.root={root}"])
    )
    x, y = run.transform(run.splits.x_train[:4]), run.splits.y_train[:4]
    assert check_gradients(run.net, run.loss_fn, x, y).status == PASS


def test_a_bias_that_batch_norm_cancels_is_no_gradient_bug():
    """docs/training.md's custom model puts a convolution's bias before batch norm, which subtracts
    it again: its true gradient is zero, backward gives ~1e-17 and finite differences ~1e-10
    of noise. Noise over noise is no disagreement (cnn.gradcheck.resolution)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 16, 16, 3)).astype(np.float32), rng.integers(0, 10, 4)
    net = build_model("custom", input_shape=(16, 16, 3), layers=[
        {"type": "conv", "out": 8}, {"type": "batchnorm"}, {"type": "relu"},
        {"type": "global_avgpool"}])
    check = check_gradients(net, SoftmaxCrossEntropy(), x, y)
    assert check.status == PASS, check.line()
    # A gradient that is wrong and not small is still found at that bias's neighbour.
    net.sublayers["relu1"] = type("HalfReLU", (ReLU,), {
        "backward": lambda self, dout: 0.5 * ReLU.backward(self, dout)})()
    assert check_gradients(net, SoftmaxCrossEntropy(), x, y).status == FAIL
