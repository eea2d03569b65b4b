"""How a run uses the cores: batch chunks on Python threads, BLAS on one.

cnn/ runs the batch chunks of its convolutions, ReLUs, max-pools and batch
norms on the threads of a `cnn.parallel.threads(n)` scope but cannot tell BLAS
what to do: that needs threadpoolctl, which only the harness imports.
`chunk_threads` opens that scope with as many threads as BLAS would have had,
and puts BLAS on one thread, for the time of a `with` block, whatever the count.

That is what makes a run's numbers the same for any number of threads, by
construction rather than by luck of the BLAS kernel:
- the chunks a layer cuts depend on the batch alone (cnn.parallel.batch_chunks),
  and their partial sums are added in chunk order;
- every product inside a layer runs on one BLAS thread, so BLAS never splits it
  in a way that depends on its thread count (OpenBLAS does, and then rounds
  differently: not every kernel gives the same bits on 1 and 2 threads).
So a parallel sweep's job, given one BLAS thread (experiments/sweeps/launchers.py),
keeps to one core, and `make rerun` of it on both cores gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

from cnn import parallel


def current_blas_threads() -> int:
    """The threads BLAS would use now (1 if NumPy has no BLAS threads to report)."""
    import numpy  # noqa: F401  threadpoolctl sees only libraries already loaded

    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts, default=1)


@contextmanager
def chunk_threads(threads: int | None = None) -> Iterator[int]:
    """Within the block: `threads` threads for the layers' batch chunks, BLAS on one thread.

    By default as many as BLAS had, or as an enclosing block gave the chunks (a block
    inside another keeps its threads, though BLAS already is on one). Yields the number;
    restores both afterwards."""
    if threads is None:
        threads = max(current_blas_threads(), parallel.current_threads())
    with threadpool_limits(1, user_api="blas"), parallel.threads(threads):
        yield threads
