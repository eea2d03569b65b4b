"""Health checks before training: each names the most likely cause of a run that will
not converge, in plain words (see the package docstring for the causes)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np

from cnn.diagnostics.memorise import check_overfit
from cnn.diagnostics.statistics import NetworkStats, layer_statistics, update_ratios, weights
from cnn.diagnostics.verdict import FAIL, PASS, WARN, Check
from cnn.gradcheck import check_network
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import Optimizer
from cnn.training import train_step

MAX_CHECKED_ARRAYS = 24  # parameter arrays the gradient check probes (vgg has 20)

# -- checks ------------------------------------------------------------------------------------


def check_initial_loss(loss: float, num_classes: int) -> Check:
    """A fresh classifier should be nearly uncommitted: loss about ln(K).

    Up to 2 ln(K) passes: He init starts near 1.5 ln(K) (see cnn.models) and trains
    well; unit_normal starts near 100 ln(K).
    Far above, the network is confidently wrong before it has seen any data.
    """
    expected = math.log(num_classes)
    name = f"initial loss vs ln({num_classes})={expected:.3f}"
    if not math.isfinite(loss):
        return Check(
            name, FAIL, loss, "the loss is not finite before training: broken weights or data"
        )
    if loss > 4 * expected:
        return Check(
            name,
            FAIL,
            loss,
            "initial weights far too large: the network is confidently "
            "wrong before training (use he or xavier, or a smaller std)",
        )
    if loss > 2 * expected:
        return Check(
            name, WARN, loss, "initial scale large: the first steps undo confident guesses"
        )
    if loss < expected - 0.5:
        return Check(
            name, WARN, loss, "loss below chance before training: check the labels and the loss"
        )
    return Check(name, PASS, loss, "the network starts from an uncommitted guess")


def check_gradients(
    net: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray, tol: float = 1e-4
) -> Check:
    """Backpropagation against finite differences on a float64 copy of the network.

    Real images put some ReLU and max-pool inputs within eps of a kink, where
    the difference quotient straddles two slopes. Such an error shrinks with
    eps; a wrong backward does not. So entries above `tol` are measured again
    with eps ten times smaller, and the smaller error counts.
    """
    twin = copy.deepcopy(net).to(np.float64)
    x64 = x.astype(np.float64)
    # Each checked entry costs two forward passes of the whole network: a deep network (a
    # resnet-20 has 65 arrays, a resnet-56 173) has a probe of MAX_CHECKED_ARRAYS arrays
    # spread from input to output, the first and last included; the others, all of them.
    keys = list(twin.params)
    if len(keys) > MAX_CHECKED_ARRAYS:
        spread = np.linspace(0, len(keys) - 1, MAX_CHECKED_ARRAYS).round().astype(int)
        keys = [keys[i] for i in sorted(set(spread))]
    errors = check_network(twin, x64, y, loss=loss_fn, max_checks=6, eps=1e-6, params=keys)
    if max(errors.values()) > tol:
        finer = check_network(twin, x64, y, loss=loss_fn, max_checks=6, eps=1e-7, params=keys)
        errors = {k: min(v, finer[k]) for k, v in errors.items()}
    # Training never uses the input's gradient, and with small weights it is so small
    # that finite differences lose their precision: judge the parameters only.
    errors.pop("input")
    worst = max(errors, key=errors.get)
    name = "gradient check (float64, worst relative error)"
    if not math.isfinite(errors[worst]) or errors[worst] > tol:
        return Check(
            name,
            FAIL,
            errors[worst],
            f"a gradient bug: backward disagrees with finite differences at {worst}",
        )
    return Check(
        name, PASS, errors[worst], f"backward agrees with finite differences (worst: {worst})"
    )


def check_activations(stats: NetworkStats) -> Check:
    """Activation scale through the network at initialisation."""
    stds = stats.of("act_std")
    name = "largest activation std"
    largest = max(stds, key=stds.get)
    value = stds[largest]
    last = list(stds.values())[-1]
    if not all(math.isfinite(v) for v in stds.values()) or value > 1e3:
        return Check(
            name,
            FAIL,
            value,
            f"exploding activations (at {largest}): the initial scale is "
            "too large for the layers' fan-in",
        )
    if value > 20:
        return Check(
            name, WARN, value, f"large activations (at {largest}): the initial scale is large"
        )
    if last < 1e-2:  # the logits barely depend on the input: no signal gets through
        return Check(
            "output std",
            WARN,
            last,
            "vanishing activations: the initial scale is too small "
            "for the signal to reach the output",
        )
    return Check(name, PASS, value, f"activations stay in a sane range (largest at {largest})")


def check_dead_units(stats: NetworkStats) -> Check:
    dead = stats.of("dead_frac")
    if not dead:
        return Check("dead ReLUs", PASS, 0.0, "no ReLU layers")
    worst = max(dead, key=dead.get)
    name = "largest fraction of dead ReLUs"
    if dead[worst] > 0.9:
        return Check(
            name,
            FAIL,
            dead[worst],
            f"{worst} is almost entirely dead: no gradient flows "
            "through it (a learning rate too high or a bad initial scale)",
        )
    if dead[worst] > 0.5:
        return Check(name, WARN, dead[worst], f"more than half of {worst} is dead")
    return Check(name, PASS, dead[worst], f"units are alive (worst: {worst})")


def check_update_ratio(ratios: dict[str, float]) -> Check:
    """The first step's update relative to the weights, per hidden layer (healthy: ~1e-3).

    The classifier (the last entry) is left out: its inputs are the whole network's
    features, so its first update is large by design.
    """
    ratios = dict(list(ratios.items())[:-1]) if len(ratios) > 1 else ratios
    worst = max(ratios, key=ratios.get)
    value = ratios[worst]
    name = "largest update-to-weight ratio of the first step"
    if not math.isfinite(value) or value > 1.0:
        return Check(
            name,
            FAIL,
            value,
            f"learning rate too high: one step rewrites {worst} entirely",
        )
    if value > 0.1:
        return Check(
            name,
            WARN,
            value,
            f"learning rate high: one step changes {worst} by over 10%",
        )
    if max(ratios.values()) < 1e-6:
        return Check(name, WARN, value, "learning rate too low: the weights barely move")
    return Check(
        name,
        PASS,
        value,
        f"updates are a small fraction of the weights (largest: {worst})",
    )


def first_step_ratios(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, float]:
    """Update-to-weight ratios of one optimiser step, taken on a copy of the network
    (NaN if the step's loss is not finite: the step would make the weights so)."""
    twin = copy.deepcopy(net)
    before = weights(twin)
    with np.errstate(all="ignore"):
        loss, _ = train_step(twin, loss_fn, copy.deepcopy(optimizer), x, y)
    ratios = update_ratios(before, weights(twin))
    return ratios if math.isfinite(loss) else dict.fromkeys(ratios, math.nan)


def health_checks(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    make_optimizer: Callable[[], Optimizer],
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    gradcheck_images: int = 4,
    overfit_images: int = 20,
    overfit_steps: int = 200,
) -> tuple[list[Check], NetworkStats]:
    """Every check on a configured network and real (normalised) images x, y.

    Returns the checks and the initial per-layer statistics. Nothing here changes
    `net`: what trains is always a copy.
    """
    with np.errstate(all="ignore"):
        stats = layer_statistics(net, loss_fn, x, y)
    checks = [
        check_initial_loss(stats.loss, num_classes),
        check_gradients(net, loss_fn, x[:gradcheck_images], y[:gradcheck_images]),
        check_activations(stats),
        check_dead_units(stats),
        check_update_ratio(first_step_ratios(net, loss_fn, make_optimizer(), x, y)),
        check_overfit(
            net, loss_fn, make_optimizer, x[:overfit_images], y[:overfit_images], overfit_steps
        ),
    ]
    return checks, stats
