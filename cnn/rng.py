"""Independent random streams derived from one seed.

Each consumer (weight init, data split, shuffling, augmentation) gets its own
generator, so changing one (say, turning augmentation on) does not shift the
draws of the others, and one seed still fixes them all. Dropout layers draw from
generators spawned from the init stream (cnn.models.registry.dropout_layers), which
leaves its draws alone, and a checkpoint saves them with the layers.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("init", "split", "shuffle", "augment")
# Streams that earlier versions made but nothing drew from; a checkpoint may still hold them.
RETIRED_STREAMS = ("dropout",)


def make_generators(seed: int) -> dict[str, np.random.Generator]:
    """One np.random.Generator per stream name in STREAMS, all derived from `seed`."""
    return {name: np.random.default_rng([seed, i]) for i, name in enumerate(STREAMS)}
