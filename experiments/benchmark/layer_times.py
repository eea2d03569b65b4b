"""Each layer's forward and backward time inside real training steps.

The steps are `cnn.training.train_step` itself (forward, loss, backward, optimiser
step), with a clock observing every leaf layer's passes (cnn.layers.base.Observer) for
the time of the measurement. Nothing else runs between the layer passes, so their times add up to
the step's, up to the loss, the optimiser step and a block's own additions; a block
(a resnet's) is timed leaf by leaf.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cnn.layers.base import Layer, Observer
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.training import train_step


@dataclass
class LayerTiming:
    """One leaf's median times over the timed steps, and what a FLOP count needs."""

    name: str
    layer: Layer
    forward_ms: float
    backward_ms: float
    out_shape: tuple[int, ...]  # the forward output, (N, Ho, Wo, F) or (N, D_out)
    input_grad: bool  # False when backward skipped dx (the network's first layer)
    in_shape: tuple[int, ...] = ()  # the forward input, (N, H, W, C) or (N, D_in)
    conv_gflops: float | None = None  # filled by the FLOP count for a convolution


@dataclass
class StepProfile:
    """Per-leaf times in forward order, and the median wall time of the timed steps."""

    layers: list[LayerTiming]
    step_ms: float
    # Median over the steps of each step's layer times summed: beside step_ms, what the
    # table leaves out (a sum of per-layer medians runs low when the machine is noisy).
    layers_ms: float


class _Clock(Observer):
    """Seconds spent in one leaf's passes during the current step."""

    def __init__(self) -> None:
        self.forward_s = self.backward_s = 0.0
        self.started = 0.0
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()
        self.input_grad = True

    def forward_start(self, layer: Layer, x: np.ndarray) -> None:
        self.in_shape = x.shape
        self.started = time.perf_counter()

    def forward_end(self, layer: Layer, x: np.ndarray, out: np.ndarray) -> None:
        self.forward_s += time.perf_counter() - self.started
        self.out_shape = out.shape

    def backward_start(self, layer: Layer, dout: np.ndarray) -> None:
        self.started = time.perf_counter()

    def backward_end(self, layer: Layer, dout: np.ndarray, dx: np.ndarray | None) -> None:
        self.backward_s += time.perf_counter() - self.started
        self.input_grad = dx is not None


@contextmanager
def _clocked_leaves(net: Sequential) -> Iterator[dict[str, _Clock]]:
    """Within the block, a clock observes every leaf's passes; afterwards none does."""
    clocks = {name: _Clock() for name, _ in net.named_leaves()}
    stops = [leaf.observe(clocks[name]) for name, leaf in net.named_leaves()]
    try:
        yield clocks
    finally:
        for stop in stops:
            stop()


def profile_steps(
    net: Sequential, x: np.ndarray, y: np.ndarray, repeats: int, warmup: int = 2
) -> StepProfile:
    """Median per-leaf forward and backward times and median step time, over `repeats`
    training steps on the batch x (B, H, W, C), y (B,) after `warmup` untimed ones.

    The steps update the network's weights (SGD with momentum), as training does."""
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9)
    with _clocked_leaves(net) as clocks:
        forward: dict[str, list[float]] = {name: [] for name in clocks}
        backward: dict[str, list[float]] = {name: [] for name in clocks}
        steps = []
        for i in range(warmup + repeats):
            for clock in clocks.values():
                clock.forward_s = clock.backward_s = 0.0
            start = time.perf_counter()
            train_step(net, loss_fn, opt, x, y)
            if i < warmup:
                continue
            steps.append(time.perf_counter() - start)
            for name, clock in clocks.items():
                forward[name].append(clock.forward_s)
                backward[name].append(clock.backward_s)
    layers = [
        LayerTiming(name, leaf, statistics.median(forward[name]) * 1e3,
                    statistics.median(backward[name]) * 1e3, clocks[name].out_shape,
                    clocks[name].input_grad, clocks[name].in_shape)
        for name, leaf in net.named_leaves()
    ]
    sums = [sum(forward[name][i] + backward[name][i] for name in clocks)
            for i in range(repeats)]
    return StepProfile(layers, statistics.median(steps) * 1e3, statistics.median(sums) * 1e3)
