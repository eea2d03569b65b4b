"""Timing on a shared machine: contenders in turns, each layer's passes, and NumPy's own
matrix product as the yardstick the convolutions are measured against."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from cnn.layers import Conv2D
from cnn.losses import SoftmaxCrossEntropy
from cnn.network import Sequential

INPUT_SHAPE = (32, 32, 3)


def interleaved_medians(
    contenders: dict[str, Callable[[], object]], repeats: int, warmup: int, block: int = 3
) -> dict[str, float]:
    """Median seconds of `repeats` timed calls of each contender, taken in turns.

    A shared machine drifts in speed (other jobs, a busy host): timed in turns, the
    contenders meet the same conditions, so their ratio holds even when the
    absolute figures move. Each turn calls one contender `block` times and times
    all but the first: right after a switch, the other library's worker threads
    still spin for a moment and take a core (timed back to back, one call each,
    PyTorch ran at half its speed).
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    while any(len(ts) < repeats for ts in times.values()):
        for name, fn in contenders.items():
            fn()
            for _ in range(block - 1):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts[:repeats]) for name, ts in times.items()}


def matmul_product() -> tuple[Callable[[], object], int]:
    """A large float32 matrix product and its FLOPs: what NumPy's BLAS reaches on it is
    the yardstick for convolutions."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    return (lambda: a @ b), 2 * 4096 * 1024 * 1024


def batch(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *INPUT_SHAPE), dtype=np.float32)
    return x, rng.integers(0, 10, batch_size)


@dataclass
class LayerTiming:
    name: str
    forward_ms: float
    backward_ms: float
    conv_gflops: float | None = None


def conv_flops(layer: Conv2D, out_shape: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of one forward pass: every output value is a KH*KW*C dot product."""
    n, ho, wo, f = out_shape
    kh, kw = layer.kernel
    return 2 * n * ho * wo * f * kh * kw * layer.in_channels


def time_layers(
    net: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    repeats: int,
    yardstick_threads: int | None = None,
) -> tuple[list[LayerTiming], float]:
    """Per-layer forward and backward time (median over repeats) in a training step, and
    the matmul yardstick's GFLOP/s, timed once a round so that it meets the same machine,
    on `yardstick_threads` BLAS threads (by default, as many as the layers' BLAS has)."""
    loss_fn = SoftmaxCrossEntropy()
    forward = {name: [] for name in net.names}
    backward = {name: [] for name in net.names}
    product, product_flops = matmul_product()
    yardstick = []
    shapes = {}
    for _ in range(repeats + 1):  # the first pass warms up
        with threadpool_limits(yardstick_threads, user_api="blas"):
            start = time.perf_counter()
            product()
            yardstick.append(time.perf_counter() - start)
        h = x
        for name, layer in net.named_layers():
            start = time.perf_counter()
            h = layer.forward(h, training=True)
            forward[name].append(time.perf_counter() - start)
            shapes[name] = h.shape
        loss_fn.forward(h, y)
        d = loss_fn.backward()
        for i, (name, layer) in reversed(list(enumerate(net.named_layers()))):
            start = time.perf_counter()
            # As in training, the first layer skips the input gradient nobody needs.
            d = layer.backward(d, input_grad=False) if i == 0 else layer.backward(d)
            backward[name].append(time.perf_counter() - start)
    timings = []
    for name, layer in net.named_layers():
        fw, bw = statistics.median(forward[name][1:]), statistics.median(backward[name][1:])
        gflops = None
        if isinstance(layer, Conv2D):
            # Backward does two products of forward's size (dW and dx), or one for the first layer.
            flops = conv_flops(layer, shapes[name]) * (2 if name == net.names[0] else 3)
            gflops = flops / (fw + bw) / 1e9
        timings.append(LayerTiming(name, fw * 1e3, bw * 1e3, gflops))
    return timings, product_flops / statistics.median(yardstick[1:]) / 1e9
