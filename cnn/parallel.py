"""Spreading a layer's batch chunks over threads.

Convolutions (their patch matrices and products), ReLU, max-pooling and batch
norm's element-wise passes work on a batch a chunk at a time: `map_chunks`
runs the chunks, `batch_chunks` cuts them, `over_batch` does both for
element-wise passes.

NumPy lets go of the GIL inside its copies, ufuncs and matrix products, so
Python threads that each take whole chunks of a batch keep several cores busy.
With BLAS itself on one thread, the cores meet only once a layer pass, instead
of at every one of BLAS's small matrix products (OpenBLAS splits a product of
a few thousand rows between its threads and waits for the slowest, which on a
shared machine costs more than the product). A chunk's result does not depend
on the thread that computed it, and `map_chunks` returns results in chunk
order, so sums over chunks are the same for any number of threads.

How many threads take the chunks is a scoped setting, not a layer's attribute:

    with parallel.threads(2):
        net.forward(x, training=True)   # every layer's chunks on 2 threads

Outside any such block, 1. The setting lives in a context variable, so a
scope entered in one thread (or asyncio task) does not leak into another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

# Element-wise passes work on chunks of about this size, which fit one core's L2 cache.
ROW_CHUNK_BYTES = 1 << 20

# The threads of the innermost `threads(n)` block around the caller; 1 outside any.
_THREADS: ContextVar[int] = ContextVar("cnn_chunk_threads", default=1)


@contextmanager
def threads(n: int) -> Iterator[int]:
    """Within the block, layers take their batch chunks on `n` threads. Yields n."""
    if int(n) != n or n < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
    token = _THREADS.set(int(n))
    try:
        yield int(n)
    finally:
        _THREADS.reset(token)


def current_threads() -> int:
    """The threads of the innermost `threads(n)` block, 1 outside any."""
    return _THREADS.get()


@cache
def _executor(threads: int) -> ThreadPoolExecutor:
    # One pool per size for the process: starting threads for every layer pass
    # would cost more than a small layer's work.
    return ThreadPoolExecutor(threads, thread_name_prefix="cnn-chunks")


def map_chunks(fn: Callable[[T], R], chunks: Sequence[T]) -> list[R]:
    """[fn(c) for c in chunks], on up to current_threads() threads; results in chunk order."""
    n = current_threads()
    if n <= 1 or len(chunks) <= 1:
        return [fn(chunk) for chunk in chunks]
    return list(_executor(n).map(fn, chunks))


def batch_chunks(n: int, bytes_per_item: int, budget: int, multiple: int = 4) -> list[slice]:
    """Split range(n) into slices whose temporaries need about `budget` bytes each.

    Why: a whole batch's temporaries (a convolution's patch matrix is 9x its
    input) are far larger than the CPU caches; chunk by chunk they stay in
    cache between the pass that writes them and the pass that reads them.
    When more than one slice is needed, their number is rounded up to a
    multiple of `multiple` (as long as items last) and their sizes differ by
    at most one, so that 2 or 4 threads get equal shares.
    """
    count = max(1, -(-n * bytes_per_item // max(budget, 1)))  # ceil
    if count > 1:
        count = min(n, -(-count // multiple) * multiple)
    bounds = [i * n // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def over_batch(fn: Callable[[slice], object], x: np.ndarray) -> None:
    """fn(rows) for slices `rows` of x's first axis, about ROW_CHUNK_BYTES of x each,
    on the scope's threads. For element-wise passes that write into arrays of their own."""
    n = x.shape[0]
    map_chunks(fn, batch_chunks(n, x.nbytes // max(n, 1), ROW_CHUNK_BYTES))
