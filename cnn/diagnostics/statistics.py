"""Per-layer measurements of a network, taken without changing its training state:
activation mean and std, dead ReLUs, weight-gradient norms, update-to-weight ratios."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


class _Recorder(Observer):
    """A layer's output mean and std, and for an activation its dead units, into `stats`."""

    def __init__(self, name: str, stats: dict[str, float]) -> None:
        self.name, self.stats = name, stats

    def forward_end(self, layer: Layer, x: np.ndarray, out: np.ndarray) -> None:
        # Measured at once: a residual block adds its shortcut into this array in place.
        self.stats[f"{self.name}.act_mean"] = float(out.mean())
        self.stats[f"{self.name}.act_std"] = float(out.std())
        if isinstance(layer, ReLU | LeakyReLU):
            self.stats[f"{self.name}.dead_frac"] = float((out <= 0).all(axis=0).mean())


@contextmanager
def _recorded(net: Sequential, stats: dict[str, float]) -> Iterator[None]:
    """Record every leaf's output statistics as the network runs forward, blocks' leaves
    included ("stage2.block1.conv1.act_std"), through an observer on each leaf."""

    stops = [leaf.observe(_Recorder(name, stats)) for name, leaf in net.named_leaves()]
    try:
        yield
    finally:
        for stop in stops:
            stop()


def layer_statistics(
    net: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray
) -> dict[str, float]:
    """Per-layer statistics of one training-mode forward and backward pass.

    Keys carry the layer's dotted name (net.named_leaves(): a block's layers are
    measured one by one): "conv1.act_mean", "conv1.act_std", "relu1.dead_frac"
    (units that are zero for every image in x), "stage2.block1.conv1.grad_norm"
    (of the weight gradient), and "loss".
    """

    def measure() -> dict[str, float]:
        stats: dict[str, float] = {}
        with _recorded(net, stats):
            logits = net.forward(x, training=True)
        stats["loss"] = loss_fn.forward(logits, y)
        net.backward(loss_fn.backward())
        for name, layer in net.named_leaves():
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
