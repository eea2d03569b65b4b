"""How a run uses the cores: batch chunks on Python threads, BLAS on one.

cnn/ runs the batch chunks of its convolutions, ReLUs, max-pools and batch
norms on each layer's `threads` threads (cnn/parallel.py) but cannot tell BLAS
what to do: that needs threadpoolctl, which only the harness imports.
`chunk_threads` gives those layers as many threads as BLAS would have had, and
BLAS one, for the time of a `with` block.
So a parallel sweep's job, given one BLAS thread (experiments/sweeps/launchers.py),
keeps to one core, and the numbers are the same either way (the chunks and
their order do not change with the threads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

from cnn.network import Sequential


def current_blas_threads() -> int:
    """The threads BLAS would use now (1 if NumPy has no BLAS threads to report)."""
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts, default=1)


@contextmanager
def chunk_threads(net: Sequential, threads: int | None = None) -> Iterator[int]:
    """Within the block: `threads` (by default, current_blas_threads()) threads for each layer
    that takes them, BLAS on one thread. Yields the number; restores both afterwards."""
    threads = current_blas_threads() if threads is None else threads
    layers = [layer for layer in net.layers if hasattr(layer, "threads")]
    before = [layer.threads for layer in layers]
    with threadpool_limits(1 if threads > 1 else None, user_api="blas"):
        for layer in layers:
            layer.threads = threads
        try:
            yield threads
        finally:
            for layer, value in zip(layers, before, strict=True):
                layer.threads = value
