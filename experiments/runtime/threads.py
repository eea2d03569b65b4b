"""How a run uses the cores: batch chunks on Python threads, BLAS on one.

cnn/ runs the batch chunks of its convolutions, ReLUs, max-pools and batch
norms on the threads of a `cnn.parallel.threads(n)` scope but cannot tell BLAS
what to do: that needs threadpoolctl, which only the harness imports.
`chunk_threads` opens that scope with as many threads as BLAS would have had,
and puts BLAS on one, for the time of a `with` block.
So a parallel sweep's job, given one BLAS thread (experiments/sweeps/launchers.py),
keeps to one core, and the numbers are the same either way (the chunks and
their order do not change with the threads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

from cnn import parallel


def current_blas_threads() -> int:
    """The threads BLAS would use now (1 if NumPy has no BLAS threads to report)."""
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts, default=1)


@contextmanager
def chunk_threads(threads: int | None = None) -> Iterator[int]:
    """Within the block: `threads` (by default, current_blas_threads()) threads for the
    layers' batch chunks, BLAS on one thread. Yields the number; restores both afterwards."""
    threads = current_blas_threads() if threads is None else threads
    with threadpool_limits(1 if threads > 1 else None, user_api="blas"), \
            parallel.threads(threads):
        yield threads
