"""An exponential moving average of a network's weights, evaluated instead of the weights.

The average is owned here, outside the layers: the optimiser keeps updating the network's
own arrays, and `WeightAverage` keeps a shadow copy of every parameter and buffer
(batch-norm running statistics included, so that they describe the averaged weights),
updated after each optimiser step:

    shadow = d * shadow + (1 - d) * current,   d = min(decay, (1 + t) / (10 + t))

where t counts the updates so far. The warm-up of d (as in TensorFlow's
ExponentialMovingAverage with num_updates) keeps the first steps from being dominated by
the untrained starting weights. With decay 0.99 the average spans about the last 100 steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from cnn.network import Sequential


class WeightAverage:
    """The moving average of `net`'s parameters and buffers; a training callback.

    As a callback of `cnn.training.fit`, `on_batch_end` updates it after every optimiser
    step. `swapped_in()` evaluates the network with the averaged weights and puts the
    trained ones back; `copy_to()` keeps the average in the network for good.
    """

    def __init__(self, net: Sequential, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.net, self.decay = net, float(decay)
        self.shadow = net.state_dict()  # copies: {"conv1.W": ..., "bn1.running_mean": ...}
        self.updates = 0

    def rate(self) -> float:
        """The decay d of the next update, warmed up over the first steps."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    def update(self) -> None:
        """shadow = d * shadow + (1 - d) * current, for every parameter and buffer."""
        d = self.rate()
        current = {**self.net.params, **self.net.buffers}
        for key, average in self.shadow.items():
            average *= d
            average += (1.0 - d) * current[key]
        self.updates += 1

    def on_batch_end(self, step: int, loss: float, acc: float) -> None:
        self.update()

    def copy_to(self, net: Sequential | None = None) -> None:
        """Write the average into `net` (by default the averaged network itself)."""
        (net or self.net).load_state_dict(self.shadow, source="the weight average")

    @contextmanager
    def swapped_in(self) -> Iterator[Sequential]:
        """Within the block the network holds the average; afterwards its own weights again."""
        own = self.net.state_dict()
        self.copy_to()
        try:
            yield self.net
        finally:
            self.net.load_state_dict(own, source="the trained weights")

    def state_dict(self) -> dict[str, np.ndarray]:
        """The shadow arrays and the update count, flat: saveable with np.savez."""
        return {**{k: v.copy() for k, v in self.shadow.items()},
                "updates": np.array(self.updates)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `state_dict` returned; every key of the network must be there."""
        arrays = {k: v for k, v in state.items() if k != "updates"}
        self.shadow = self.net.check_state_dict(arrays, source="the weight average's state")
        self.updates = int(state["updates"])
