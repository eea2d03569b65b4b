"""Timing on a shared machine: contenders in turns, and NumPy's own matrix product as the
yardstick the layers and the ceiling are measured against."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

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


def matmul_operands() -> tuple[np.ndarray, np.ndarray]:
    """The yardstick's float32 factors, (4096, 1024) and (1024, 1024), seeded."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((4096, 1024), dtype=np.float32),
            rng.standard_normal((1024, 1024), dtype=np.float32))


def matmul_product() -> tuple[Callable[[], object], int]:
    """A large float32 matrix product and its FLOPs: what NumPy's BLAS reaches on it is
    the yardstick for convolutions."""
    a, b = matmul_operands()
    return (lambda: a @ b), 2 * a.shape[0] * a.shape[1] * b.shape[1]


def time_matmul(repeats: int, threads: int | None) -> list[float]:
    """Seconds of `repeats` timed products (after one untimed) on `threads` BLAS threads
    (None: as many as BLAS has).

    Timed in a block of its own: OpenBLAS's threads keep spinning for a while after a
    product and take a core, so a product timed just before layer passes slows them."""
    product, _ = matmul_product()
    with threadpool_limits(threads, user_api="blas"):
        return timed(product, repeats)


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of `repeats` timed calls of `run`, after one untimed (its allocations and
    the threads' start)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def matmul_gflops(seconds: list[float]) -> float:
    """The yardstick's GFLOP/s from the median of its timed products."""
    _, flops = matmul_product()
    return flops / statistics.median(seconds) / 1e9


def batch(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch: float32 images (B, 32, 32, 3) and int64 labels (B,)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *INPUT_SHAPE), dtype=np.float32)
    return x, rng.integers(0, 10, batch_size)
