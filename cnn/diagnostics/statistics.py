"""Per-layer measurements of a network, taken without changing its training state:
activation mean and std, dead ReLUs, weight-gradient norms, update-to-weight ratios."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from cnn.layers import LeakyReLU, ReLU, WeightedLayer
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential


def _probe(net: Sequential, fn: Callable[[], object]) -> object:
    """Run fn without leaving a trace: batch-norm running statistics and dropout
    generators are restored afterwards, so diagnosing never changes training."""
    buffers = {k: v.copy() for k, v in net.buffers.items()}
    gens = [
        layer.rng
        for _, layer in net.named_leaves()
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


@contextmanager
def _recorded(net: Sequential, stats: dict[str, float]) -> Iterator[None]:
    """Record every leaf's output statistics as the network runs forward, blocks' leaves
    included ("stage2.block1.conv1.act_std"); the leaves' own forward is restored after."""
    leaves = list(net.named_leaves())
    for name, leaf in leaves:
        def record(x: np.ndarray, training: bool = False, *, _name: str = name,
                   _leaf=leaf, _forward=leaf.forward) -> np.ndarray:
            h = _forward(x, training=training)
            # Measured at once: a residual block adds its shortcut into this array in place.
            stats[f"{_name}.act_mean"] = float(h.mean())
            stats[f"{_name}.act_std"] = float(h.std())
            if isinstance(_leaf, ReLU | LeakyReLU):
                stats[f"{_name}.dead_frac"] = float((h <= 0).all(axis=0).mean())
            return h

        leaf.forward = record  # an instance attribute, shadowing the class's method
    try:
        yield
    finally:
        for _, leaf in leaves:
            del leaf.forward


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
        net.backward(loss_fn.backward(), input_grad=False)
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
