"""Why does a network not train? Checks that answer it in plain words.

A run that fails to converge has few usual causes, each with a signature
that can be measured before or during training:

- a gradient bug: backpropagation disagrees with finite differences;
- an initial scale too large: the loss starts far above ln(K) and
  activations grow layer after layer; too small: they shrink to nothing;
- dead units: ReLUs that output zero for every input pass no gradient;
- a learning rate too high: one step changes the weights by a large
  fraction of themselves (update-to-weight ratio far above ~1e-3), the loss
  explodes; too low: the ratio is tiny and nothing moves;
- a network that cannot even memorise 20 images has one of the above.

`health_checks` runs them all on a configured network and a few real
images; `LayerMonitor` records the per-layer statistics during training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cnn.gradcheck import check_network
from cnn.layers import LeakyReLU, ReLU, WeightedLayer
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import Adam, Optimizer

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass
class Check:
    """One diagnostic: its verdict, the measured value, and what it most likely means."""

    name: str
    status: str  # pass | warn | fail
    value: float
    cause: str

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.value:.4g} - {self.cause}"


# -- measurements ------------------------------------------------------------------------------


def _probe(net: Sequential, fn: Callable[[], object]) -> object:
    """Run fn without leaving a trace: batch-norm running statistics and dropout
    generators are restored afterwards, so diagnosing never changes training."""
    buffers = {k: v.copy() for k, v in net.buffers.items()}
    gens = [
        layer.rng
        for layer in net.layers
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    ]
    states = [g.bit_generator.state for g in gens]
    try:
        return fn()
    finally:
        for key, value in net.buffers.items():
            value[...] = buffers[key]
        for g, s in zip(gens, states, strict=True):
            g.bit_generator.state = s


def layer_statistics(
    net: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """Per-layer statistics of one training-mode forward and backward pass.

    Keys carry the layer's name: "conv1.act_mean", "conv1.act_std",
    "relu1.dead_frac" (units that are zero for every image in x),
    "conv1.grad_norm" (of the weight gradient), and "loss".
    """

    def measure() -> dict[str, float]:
        stats: dict[str, float] = {}
        h = x
        for name, layer in net.named_layers():
            h = layer.forward(h, training=True)
            stats[f"{name}.act_mean"] = float(h.mean())
            stats[f"{name}.act_std"] = float(h.std())
            if isinstance(layer, ReLU | LeakyReLU):
                stats[f"{name}.dead_frac"] = float((h <= 0).all(axis=0).mean())
        stats["loss"] = loss_fn.forward(h, y)
        net.backward(loss_fn.backward(), input_grad=False)
        for name, layer in net.named_layers():
            if isinstance(layer, WeightedLayer):
                stats[f"{name}.grad_norm"] = float(np.linalg.norm(layer.grads["W"]))
        return stats

    return _probe(net, measure)  # type: ignore[return-value]


def update_ratios(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[str, float]:
    """||W_after - W_before|| / ||W_before|| for each weight ("conv1.W" -> "conv1.update_ratio").

    About 1e-3 per step is healthy; 1e-1 and above means the learning rate is too high.
    """
    ratios = {}
    for key, w0 in before.items():
        if key.endswith(".W"):
            norm = float(np.linalg.norm(w0))
            ratios[key[:-2] + ".update_ratio"] = float(np.linalg.norm(after[key] - w0)) / max(
                norm, 1e-12
            )
    return ratios


class LayerMonitor:
    """Training callback: per-layer statistics at the end of every epoch.

    Activations, dead ReLUs and gradient norms come from a fixed probe batch
    (measured without touching the training state); the update-to-weight ratio
    is the mean over the epoch's steps. `history` holds one dict per epoch and
    `on_stats(epoch, stats)` is called with each, e.g. to log them.
    """

    def __init__(
        self,
        net: Sequential,
        loss_fn: SoftmaxCrossEntropy,
        probe_x: np.ndarray,
        probe_y: np.ndarray,
        on_stats: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.net, self.loss_fn, self.probe_x, self.probe_y = net, loss_fn, probe_x, probe_y
        self.on_stats = on_stats
        self.history: list[dict[str, float]] = []
        self._previous = self._weights()
        self._ratio_sums: dict[str, float] = {}
        self._steps = 0

    def _weights(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.net.params.items() if k.endswith(".W")}

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        current = self._weights()
        for key, ratio in update_ratios(self._previous, current).items():
            self._ratio_sums[key] = self._ratio_sums.get(key, 0.0) + ratio
        self._previous, self._steps = current, self._steps + 1

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        stats = layer_statistics(self.net, self.loss_fn, self.probe_x, self.probe_y)
        stats.pop("loss")
        stats.update({k: v / max(self._steps, 1) for k, v in self._ratio_sums.items()})
        self._ratio_sums, self._steps = {}, 0
        self.history.append(stats)
        if self.on_stats is not None:
            self.on_stats(epoch, stats)


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
    errors = check_network(twin, x64, y, loss=loss_fn, max_checks=6, eps=1e-6)
    if max(errors.values()) > tol:
        finer = check_network(twin, x64, y, loss=loss_fn, max_checks=6, eps=1e-7)
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


def check_activations(stats: dict[str, float]) -> Check:
    """Activation scale through the network at initialisation."""
    stds = {k[: -len(".act_std")]: v for k, v in stats.items() if k.endswith(".act_std")}
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


def check_dead_units(stats: dict[str, float]) -> Check:
    dead = {k[: -len(".dead_frac")]: v for k, v in stats.items() if k.endswith(".dead_frac")}
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

    The classifier (the last entry) is left out: it starts deliberately small
    (see cnn.models.build_model's head_gain), so its first update is large by design.
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
            f"learning rate too high: one step rewrites {worst[: -len('.update_ratio')]} entirely",
        )
    if value > 0.1:
        return Check(
            name,
            WARN,
            value,
            f"learning rate high: one step changes {worst[: -len('.update_ratio')]} by over 10%",
        )
    if max(ratios.values()) < 1e-6:
        return Check(name, WARN, value, "learning rate too low: the weights barely move")
    return Check(
        name,
        PASS,
        value,
        f"updates are a small fraction of the weights (largest: {worst[: -len('.update_ratio')]})",
    )


def _memorise(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
) -> tuple[int | None, float, list[float]]:
    """Train a copy on (x, y); return (steps needed or None, final accuracy, losses)."""
    twin = copy.deepcopy(net)
    acc, losses = 0.0, []
    with np.errstate(all="ignore"):
        for step in range(steps):
            logits = twin.forward(x, training=True)
            losses.append(loss_fn.forward(logits, y))
            if not math.isfinite(losses[-1]):
                break
            acc = float((logits.argmax(axis=1) == y).mean())
            if acc == 1.0 and losses[-1] < 0.05:
                return step + 1, acc, losses
            twin.backward(loss_fn.backward(), input_grad=False)
            optimizer.step(twin.params, twin.grads)
    return None, acc, losses


def check_overfit(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    make_optimizer: Callable[[], Optimizer],
    x: np.ndarray,
    y: np.ndarray,
    steps: int = 200,
) -> Check:
    """Can a copy of the network memorise a tiny batch? If not, nothing larger will train.

    The configured optimiser tries first, at its configured (peak) rate. If it
    fails, Adam at 1e-3, which memorises any healthy network here, tries the
    same: if Adam succeeds the network is fine and the learning rate is at
    fault; if Adam fails too, the network itself cannot learn.
    """
    name = f"memorise {len(y)} images in {steps} steps (training accuracy)"
    needed, acc, losses = _memorise(net, loss_fn, make_optimizer(), x, y, steps)
    if needed is not None:
        return Check(name, PASS, acc, f"memorised in {needed} steps")
    reference, _, _ = _memorise(net, loss_fn, Adam(1e-3), x, y, steps)
    if reference is None:
        return Check(
            name,
            FAIL,
            acc,
            "the network cannot learn even with Adam at 1e-3: "
            "a gradient bug or a broken initialisation",
        )
    if not math.isfinite(losses[-1]) or losses[-1] > losses[0]:
        why = "too high: the loss rose or diverged"
    elif max(losses) > 1.05 * losses[0]:
        why = "too high: the loss went up before it came down"
    else:
        why = "too low: the loss fell too slowly"
    return Check(
        name,
        WARN,
        acc,
        f"the configured optimiser cannot memorise them, Adam at 1e-3 can "
        f"(in {reference} steps): the learning rate is most likely {why}",
    )


def first_step_ratios(
    net: Sequential,
    loss_fn: SoftmaxCrossEntropy,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, float]:
    """Update-to-weight ratios of one optimiser step, taken on a copy of the network."""
    twin = copy.deepcopy(net)
    before = {k: v.copy() for k, v in twin.params.items()}
    with np.errstate(all="ignore"):
        loss_fn.forward(twin.forward(x, training=True), y)
        twin.backward(loss_fn.backward(), input_grad=False)
        copy.deepcopy(optimizer).step(twin.params, twin.grads)
    return update_ratios(before, twin.params)


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
) -> tuple[list[Check], dict[str, float]]:
    """Every check on a configured network and real (normalised) images x, y.

    Returns the checks and the initial per-layer statistics. Nothing here changes
    `net`: what trains is always a copy.
    """
    with np.errstate(all="ignore"):
        stats = layer_statistics(net, loss_fn, x, y)
    checks = [
        check_initial_loss(stats["loss"], num_classes),
        check_gradients(net, loss_fn, x[:gradcheck_images], y[:gradcheck_images]),
        check_activations(stats),
        check_dead_units(stats),
        check_update_ratio(first_step_ratios(net, loss_fn, make_optimizer(), x, y)),
        check_overfit(
            net, loss_fn, make_optimizer, x[:overfit_images], y[:overfit_images], overfit_steps
        ),
    ]
    return checks, stats


def verdict(checks: list[Check]) -> str:
    """fail if any check fails, else warn if any warns, else pass."""
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def health_report(checks: list[Check]) -> str:
    """A short plain-text report: the verdict, then one line per check."""
    overall = verdict(checks)
    causes = [c.cause for c in checks if c.status == overall and overall != PASS]
    head = f"health: {overall.upper()}" + (f" - most likely: {causes[0]}" if causes else "")
    return "\n".join([head, *(c.line() for c in checks)])
