"""Per-layer measurements of a network, taken without changing its training state:
activation mean and std, dead ReLUs, weight-gradient norms, update-to-weight ratios."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import numpy as np

from cnn.layers import Layer, LeakyReLU, ReLU, WeightedLayer
from cnn.layers.base import Observer, snapshot_generators
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential


def _probe(net: Sequential, fn: Callable[[], object]) -> object:
    """Run fn without leaving a trace: batch-norm running statistics and dropout
    generators are restored afterwards, so diagnosing never changes training."""
    buffers = {k: v.copy() for k, v in net.buffers.items()}
    restore_generators = snapshot_generators(net)
    try:
        return fn()
    finally:
        for key, value in net.buffers.items():
            value[...] = buffers[key]
        restore_generators()


@dataclass
class LayerStats:
    """What one layer showed on a probe batch; a statistic a layer cannot have is None."""

    act_mean: float = math.nan  # of its output
    act_std: float = math.nan
    dead_frac: float | None = None  # activations: units that are zero for every image
    grad_norm: float | None = None  # weighted layers: the norm of the weight gradient
    update_ratio: float | None = None  # weighted layers, in training: ||dW|| / ||W|| a step


STATISTICS = tuple(f.name for f in fields(LayerStats))  # the suffixes of the metric names


@dataclass
class NetworkStats:
    """Every leaf's LayerStats under its dotted name, in forward order, and the loss."""

    layers: dict[str, LayerStats] = field(default_factory=dict)
    loss: float = math.nan

    def of(self, statistic: str) -> dict[str, float]:
        """{layer: value} of one statistic (one of STATISTICS), for the layers that have it."""
        return {name: value for name, stats in self.layers.items()
                if (value := getattr(stats, statistic)) is not None}

    def metrics(self) -> dict[str, float]:
        """The flat names MLflow logs them under: "conv1.act_std", "relu1.dead_frac", ..."""
        return {f"{name}.{statistic}": value for statistic in STATISTICS
                for name, value in self.of(statistic).items()}


class _Recorder(Observer):
    """A layer's output mean and std, and for an activation its dead units."""

    def __init__(self, stats: LayerStats) -> None:
        self.stats = stats

    def forward_end(self, layer: Layer, x: np.ndarray, out: np.ndarray) -> None:
        # Measured at once: a residual block adds its shortcut into this array in place.
        self.stats.act_mean, self.stats.act_std = float(out.mean()), float(out.std())
        if isinstance(layer, ReLU | LeakyReLU):
            self.stats.dead_frac = float((out <= 0).all(axis=0).mean())


@contextmanager
def _recorded(net: Sequential, stats: NetworkStats) -> Iterator[None]:
    """Record every leaf's output statistics as the network runs forward, blocks' leaves
    included ("stage2.block1.conv1"), through an observer on each leaf."""
    stops = []
    for name, leaf in net.named_leaves():
        stats.layers[name] = LayerStats()
        stops.append(leaf.observe(_Recorder(stats.layers[name])))
    try:
        yield
    finally:
        for stop in stops:
            stop()


def layer_statistics(
    net: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray
) -> NetworkStats:
    """Per-layer statistics of one training-mode forward and backward pass on (x, y).

    Layers carry their dotted names (net.named_leaves(): a block's layers are measured
    one by one): activation mean and std for each, dead units for activations, the
    weight gradient's norm for weighted layers; and the loss.
    """

    def measure() -> NetworkStats:
        stats = NetworkStats()
        with _recorded(net, stats):
            logits = net.forward(x, training=True)
        stats.loss = loss_fn.forward(logits, y)
        net.backward(loss_fn.backward())
        for name, layer in net.named_leaves():
            if isinstance(layer, WeightedLayer):
                stats.layers[name].grad_norm = float(np.linalg.norm(layer.grads["W"]))
        return stats

    return _probe(net, measure)  # type: ignore[return-value]


def weights(net: Sequential) -> dict[str, np.ndarray]:
    """A copy of each weighted layer's W, under the layer's name ("conv1", ...)."""
    return {name: layer.params["W"].copy() for name, layer in net.named_leaves()
            if isinstance(layer, WeightedLayer)}


def update_ratios(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict[str, float]:
    """||W_after - W_before|| / ||W_before|| for each layer, from two `weights(net)`.

    About 1e-3 per step is healthy; 1e-1 and above means the learning rate is too high.
    """
    return {name: float(np.linalg.norm(after[name] - w0)) / max(float(np.linalg.norm(w0)), 1e-12)
            for name, w0 in before.items()}
