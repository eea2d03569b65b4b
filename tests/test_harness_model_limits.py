"""A model's limits checked before anything exists (issue 27): custom layers fitted to the
data's own image shape, and networks too big for the machine refused from their specs,
naming the key and the estimate, without allocating them."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cnn.models import KnobError, build_model, model_memory_problem
from experiments.config import ConfigError, compose_config, validate
from experiments.datasets.base import data_config

MiB = 2**20


def _custom(layers: str, *extra: str):
    return compose_config(["model=custom", f"model.layers={layers}", *extra])


def test_custom_layers_are_checked_on_the_datas_image_shape():
    small = _custom("[{type: conv, out: 8, kernel: 11, padding: 0}]", "data=digits",
                    "data.image_size=8")
    with pytest.raises(ConfigError, match=r"model.layers: custom layers\[0\] \(conv\): a window "
                                          r"of 11 .* does not fit an input of size 8"):
        validate(small)
    # A kernel larger than CIFAR's 32 pixels fits 64-pixel images: not refused as if 32.
    validate(_custom("[{type: conv, out: 4, kernel: 40, padding: 0}]", "data=digits",
                     "data.image_size=64"))
    assert data_config(compose_config(["data=digits", "data.image_size=12"]).data).image_shape \
        == (12, 12, 3)


@pytest.mark.parametrize("layers", [
    "[{type: conv, out: 100000000}]",  # 10 GiB of weights, 400 GiB of activations per image
    "[{type: dense, out: 1000000000}]",  # 11 TiB of weights
    "[{type: conv, out: 16, padding: 10000}]",  # 20,032-pixel padded images
])
def test_a_memory_bomb_is_refused_naming_the_key_and_the_estimate_allocating_nothing(layers):
    tracemalloc.start()  # NumPy reports its allocations to tracemalloc
    try:
        with pytest.raises(ConfigError) as info:
            validate(_custom(layers))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "model.layers: needs about" in message and "TiB to train" in message
    assert "more than this machine's" in message and "GiB of memory" in message
    assert "custom layers[0]" in message or "the classifier" in message
    assert peak < 64 * MiB


def test_build_model_refuses_a_bomb_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(KnobError, match="model 'custom': needs about .* more than this "
                                            "machine's") as info:
            build_model("custom", layers=[{"type": "conv", "out": 100_000_000}])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.knob == "layers" and peak < 64 * MiB


def test_the_estimate_grows_with_the_batch_and_is_compared_with_the_memory_given():
    layers = {"layers": [{"type": "conv", "out": 16}, {"type": "relu"}]}
    # conv: 3*3*3*16 + 16 weights; the padded input, im2col's columns and its output kept
    # per image; the classifier 32*32*16*10 + 10.
    params = 448 + 163_850
    per_image = 34 * 34 * 3 + 32 * 32 * 27 + 2 * 32 * 32 * 16 + 10
    need = 4 * (4 * params + 2 * 100 * per_image)
    assert model_memory_problem("custom", (32, 32, 3), layers, batch_size=100,
                                available=need) is None
    knob, message = model_memory_problem("custom", (32, 32, 3), layers, batch_size=100,
                                         available=need - 1)
    assert knob == "layers" and f"{params:,} parameters" in message
    assert f"{per_image:,} values kept per image" in message
    # The seed network's own features train in batches of 128 on a small machine.
    cfg = compose_config(["model=custom"])
    validate(cfg)
    assert model_memory_problem("custom", (32, 32, 3), {}, batch_size=128,
                                available=256 * MiB) is None
    assert np.dtype(cfg.trainer.dtype).itemsize == 4
