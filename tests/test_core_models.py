"""The model families: today's networks unchanged, new families built from typed knobs."""

import hashlib

import numpy as np
import pytest

from cnn.models import build_model


def digest(net) -> str:
    """sha256 of every parameter and buffer, with its name and shape, in the network's order."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


# Computed from cnn/models.py before the families gained knobs (commit cd477e3): weights
# logged by earlier runs must still load, and the same seed must draw the same weights.
PINNED = [
    ({"name": "seed", "seed": 3},
     "0fb722ac37c2b787efce3e173741809789668b54223a95fc335b6f7f8e299af6"),
    ({"name": "vgg", "seed": 3},
     "0e9bdffb9850791cbc99a2e4a3d7afd21aec155bf8aebbe5675518a580d55578"),
    ({"name": "seed", "seed": 3, "init": "pytorch", "head_gain": 0.1},
     "9102176188c5bb6e3f841fbfda154f96f2b8c177eab304eb2b3579033b021d59"),
    ({"name": "vgg", "seed": 5, "input_shape": (16, 16, 3), "num_classes": 4,
      "init": "orthogonal", "dtype": np.float64},
     "4e6f6ed7b72186dfb6f4ba535dd7a09e478986a9ee41573ac2881cba0b730c73"),
]


@pytest.mark.parametrize("kwargs,expected", PINNED, ids=lambda v: str(v)[:40])
def test_seed_and_vgg_draw_the_same_weights_as_before(kwargs, expected):
    kwargs = dict(kwargs)
    assert digest(build_model(kwargs.pop("name"), **kwargs)) == expected


def test_seed_and_vgg_keep_their_layer_names():
    assert build_model("seed").names == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten1", "dense1"]
    vgg = build_model("vgg")
    assert vgg.names[:7] == ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool1"]
    assert vgg.names[-3:] == ["pool3", "flatten1", "dense1"]
    assert [p.shape for p in vgg.params.values()][-2:] == [(2048, 10), (10,)]
