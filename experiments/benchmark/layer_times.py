"""Each layer's forward and backward time inside real training steps.

The steps are `cnn.training.train_step` itself (forward, loss, backward, optimiser
step), with every leaf layer's `forward` and `backward` wrapped in a clock for the time
of the measurement. Nothing else runs between the layer passes, so their times add up to
the step's, up to the loss, the optimiser step and a block's own additions; a block
(a resnet's) is timed leaf by leaf.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from cnn.layers.base import Layer
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.training import train_step

Grad = np.ndarray | None  # what backward returns: dx, or None when it skipped it


@dataclass
class LayerTiming:
    """One leaf's median times over the timed steps, and what a FLOP count needs."""

    name: str
    layer: Layer
    forward_ms: float
    backward_ms: float
    out_shape: tuple[int, ...]  # the forward output, (N, Ho, Wo, F) or (N, D_out)
    input_grad: bool  # False when backward skipped dx (the network's first layer)
    conv_gflops: float | None = None  # filled by the FLOP count for a convolution


@dataclass
class StepProfile:
    """Per-leaf times in forward order, and the median wall time of the timed steps."""

    layers: list[LayerTiming]
    step_ms: float
    # Median over the steps of each step's layer times summed: beside step_ms, what the
    # table leaves out (a sum of per-layer medians runs low when the machine is noisy).
    layers_ms: float


class _Clock:
    """Seconds spent in one leaf's passes during the current step."""

    def __init__(self) -> None:
        self.forward = self.backward = 0.0
        self.out_shape: tuple[int, ...] = ()
        self.input_grad = True

    def wrap_forward(self, fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def timed(x: np.ndarray, *args, **kwargs) -> np.ndarray:
            start = time.perf_counter()
            out = fn(x, *args, **kwargs)
            self.forward += time.perf_counter() - start
            self.out_shape = out.shape
            return out

        return timed

    def wrap_backward(self, fn: Callable[..., Grad]) -> Callable[..., Grad]:
        def timed(dout: np.ndarray, *args, **kwargs) -> Grad:
            start = time.perf_counter()
            d = fn(dout, *args, **kwargs)
            self.backward += time.perf_counter() - start
            self.input_grad = d is not None
            return d

        return timed


@contextmanager
def _clocked_leaves(net: Sequential) -> Iterator[dict[str, _Clock]]:
    """Within the block, every leaf's passes run through a clock (an instance attribute
    that shadows the class's method); afterwards the leaves are as they were."""
    clocks: dict[str, _Clock] = {}
    leaves = list(net.named_leaves())
    try:
        for name, leaf in leaves:
            clocks[name] = clock = _Clock()
            leaf.forward = clock.wrap_forward(leaf.forward)
            leaf.backward = clock.wrap_backward(leaf.backward)
        yield clocks
    finally:
        for _, leaf in leaves:
            vars(leaf).pop("forward", None)
            vars(leaf).pop("backward", None)


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
                clock.forward = clock.backward = 0.0
            start = time.perf_counter()
            train_step(net, loss_fn, opt, x, y)
            if i < warmup:
                continue
            steps.append(time.perf_counter() - start)
            for name, clock in clocks.items():
                forward[name].append(clock.forward)
                backward[name].append(clock.backward)
    layers = [
        LayerTiming(name, leaf, statistics.median(forward[name]) * 1e3,
                    statistics.median(backward[name]) * 1e3, clocks[name].out_shape,
                    clocks[name].input_grad)
        for name, leaf in net.named_leaves()
    ]
    sums = [sum(forward[name][i] + backward[name][i] for name in clocks)
            for i in range(repeats)]
    return StepProfile(layers, statistics.median(steps) * 1e3, statistics.median(sums) * 1e3)
