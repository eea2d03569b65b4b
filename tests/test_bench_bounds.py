"""make bench --bounds: each layer's floors (its products at their shapes, its patches, its
memory traffic) beside its time. Speed itself is read from `make bench`, never asserted."""

import re

import numpy as np
import pytest

from cnn.layers import Conv2D, Dense, ReLU
from cnn.models import build_model
from experiments import bench
from experiments.benchmark.bounds import (
    Floor,
    Product,
    conv_products,
    floor_lines,
    layer_floors,
    leaf_products,
    streamed_bytes,
)
from experiments.benchmark.ceiling import training_flops
from experiments.benchmark.layer_times import LayerTiming, profile_steps
from experiments.benchmark.timing import batch
from experiments.runtime.threads import chunk_threads


def _timing(layer, in_shape, out_shape, input_grad=True):
    return LayerTiming("l", layer, 1.0, 2.0, out_shape, input_grad, in_shape=in_shape)


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("n", [3, 40])  # one chunk, and several
def test_a_convolutions_products_are_the_flops_the_ceiling_counts(n, input_grad):
    conv = Conv2D(16, 24, 3, padding=1)
    t = _timing(conv, (n, 12, 12, 16), (n, 12, 12, 24), input_grad)
    products = conv_products(conv, t.in_shape, input_grad)
    assert sum(p.flops for p in products) == training_flops(t)
    forward = [p for p in products if p.k == 3 * 3 * 16 and not p.transposed]
    assert sum(p.m for p in forward) == n * 12 * 12  # every output pixel once
    assert len([p for p in products if p.transposed]) == len(forward)  # the weight gradient
    assert any(p.n == 16 for p in products) == input_grad  # the input gradient's C columns


def test_a_strided_convolutions_input_gradient_is_the_scatters_product():
    conv = Conv2D(8, 12, 3, stride=2, padding=1)
    t = _timing(conv, (5, 9, 9, 8), (5, 5, 5, 12))
    products = conv_products(conv, t.in_shape, True)
    assert sum(p.flops for p in products) == training_flops(t)
    assert products[-1] == Product(5 * 5 * 5, 12, 3 * 3 * 8)  # dout (rows, F) @ W.T (F, K)


def test_a_dense_layers_products_are_the_flops_the_ceiling_counts():
    t = _timing(Dense(30, 10), (8, 30), (8, 10))
    assert sum(p.flops for p in leaf_products(t)) == training_flops(t)
    assert leaf_products(_timing(ReLU(), (8, 30), (8, 30))) == []


def test_the_input_gradients_patches_are_those_backward_multiplies():
    """time_patches gathers the padded output gradient as a stride-1 convolution of it
    would: with the flipped kernel, that gather gives the layer's own input gradient."""
    rng = np.random.default_rng(0)
    conv = Conv2D(5, 6, 3, padding=1, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 7, 7, 5))
    dout = rng.standard_normal((2, 7, 7, 6))
    conv.forward(x, training=True)
    dx = conv.backward(dout)
    gather = Conv2D(6, 5, 3, padding=3 - 1 - 1, bias=False, dtype=np.float64)
    flipped = conv.params["W"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, 5)
    np.testing.assert_allclose(gather._patch_rows(dout) @ flipped, dx.reshape(-1, 5),
                               rtol=1e-12, atol=1e-12)
    (grad,) = [p for p in conv_products(conv, x.shape, True) if p.n == 5]
    assert (grad.m, grad.k) == gather._patch_rows(dout).shape


def test_streamed_bytes_are_each_tensor_once_a_pass():
    t = _timing(ReLU(), (4, 8, 8, 3), (4, 8, 8, 3))
    size = 4 * 8 * 8 * 3 * 4
    assert streamed_bytes(t) == 2 * size + 3 * size  # x in, y out; dout, x in, dx out
    first = _timing(ReLU(), (4, 8, 8, 3), (4, 8, 8, 3), input_grad=False)
    assert streamed_bytes(first) == 4 * size


def test_the_rest_is_what_the_floors_leave_and_the_bound_the_larger_floor():
    conv = Floor("c", 10.0, products_ms=4.0, patches_ms=9.0, memory_ms=1.0)
    assert (conv.rest_ms, conv.bound) == (6.0, "products")  # the patches overlap, not add
    thin = Floor("t", 10.0, products_ms=1.0, patches_ms=2.0, memory_ms=3.0)
    assert (thin.rest_ms, thin.bound) == (7.0, "memory")
    bn = Floor("b", 5.0, products_ms=None, patches_ms=None, memory_ms=2.0)
    assert (bn.rest_ms, bn.bound) == (3.0, "memory")


def test_every_leaf_of_a_timed_step_gets_its_floors():
    net = build_model("seed")
    x, y = batch(8)
    with chunk_threads():
        profile = profile_steps(net, x, y, repeats=1, warmup=1)
        floors, gbps = layer_floors(profile.layers, repeats=1)
    assert [f.name for f in floors] == net.names and gbps > 0
    for f, t in zip(floors, profile.layers, strict=True):
        assert (f.products_ms is not None) == isinstance(t.layer, (Conv2D, Dense))
        assert (f.patches_ms is not None) == isinstance(t.layer, Conv2D)
        assert f.memory_ms > 0 and f.measured_ms == t.forward_ms + t.backward_ms
    lines = floor_lines(floors, gbps, profile.step_ms)
    assert len(lines) == 2 + len(floors) + 2
    assert re.match(r"^conv1 +[\d.]+ +[\d.]+ +[\d.]+ +-?[\d.]+  (products|memory) +[\d.]+$",
                    lines[2])
    assert re.match(r"^relu1 +[\d.]+ +[\d.]+ +-?[\d.]+  memory$", lines[3])


@pytest.mark.slow  # times training steps in this process and in fresh ones
def test_bench_bounds_prints_the_table_after_the_layers(capsys):
    bench.main(["--models", "seed", "--batch-size", "4", "--repeats", "1", "--warmup", "1",
                "--rounds", "1", "--no-epoch", "--no-torch", "--no-mlflow", "--bounds"])
    out = capsys.readouterr().out
    assert re.search(r"^where the [\d.]+ ms step goes \(copy bandwidth [\d.]+ GB/s\):$", out,
                     re.MULTILINE)
    for name in build_model("seed").names:
        assert re.search(rf"^{name} +[\d.]+ ", out, re.MULTILINE)
    assert re.search(r"^all layers +[\d.]+ ", out, re.MULTILINE)
