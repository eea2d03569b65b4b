"""The per-epoch monitor: per-layer statistics during training, so that a curve shows
when activations explode or units die."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnn.diagnostics.statistics import NetworkStats, layer_statistics, update_ratios, weights
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential


class LayerMonitor:
    """Training callback: per-layer statistics at the end of every epoch.

    Activations, dead ReLUs and gradient norms come from a fixed probe batch
    (measured without touching the training state); the update-to-weight ratio
    is the mean over the epoch's steps. `history` holds one NetworkStats per epoch and
    `on_stats(epoch, stats)` is called with each, e.g. to log them.
    """

    def __init__(
        self,
        net: Sequential,
        loss_fn: SoftmaxCrossEntropy,
        probe_x: np.ndarray,
        probe_y: np.ndarray,
        on_stats: Callable[[int, NetworkStats], None] | None = None,
    ) -> None:
        self.net, self.loss_fn, self.probe_x, self.probe_y = net, loss_fn, probe_x, probe_y
        self.on_stats = on_stats
        self.history: list[NetworkStats] = []
        self._previous = weights(net)
        self._ratio_sums: dict[str, float] = {}
        self._steps = 0

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        current = weights(self.net)
        for name, ratio in update_ratios(self._previous, current).items():
            self._ratio_sums[name] = self._ratio_sums.get(name, 0.0) + ratio
        self._previous, self._steps = current, self._steps + 1

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        stats = layer_statistics(self.net, self.loss_fn, self.probe_x, self.probe_y)
        for name, total in self._ratio_sums.items():
            stats.layers[name].update_ratio = total / max(self._steps, 1)
        self._ratio_sums, self._steps = {}, 0
        self.history.append(stats)
        if self.on_stats is not None:
            self.on_stats(epoch, stats)
