"""Spreading a layer's batch chunks over threads.

NumPy lets go of the GIL inside its copies, ufuncs and matrix products, so
Python threads that each take whole chunks of a batch keep several cores busy.
With BLAS itself on one thread, the cores meet only once a layer pass, instead
of at every one of BLAS's small matrix products (OpenBLAS splits a product of
a few thousand rows between its threads and waits for the slowest, which on a
shared machine costs more than the product). A chunk's result does not depend
on the thread that computed it, and `map_chunks` returns results in chunk
order, so sums over chunks are the same for any number of threads.

Who sets the number of threads: experiments/threads.py, which also puts BLAS
on one thread while they run. Without it every layer runs its chunks in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@cache
def _executor(threads: int) -> ThreadPoolExecutor:
    # One pool per size for the process: starting threads for every layer pass
    # would cost more than a small layer's work.
    return ThreadPoolExecutor(threads, thread_name_prefix="cnn-chunks")


def map_chunks(fn: Callable[[T], R], chunks: Sequence[T], threads: int = 1) -> list[R]:
    """[fn(c) for c in chunks], on up to `threads` threads; results in chunk order."""
    if threads <= 1 or len(chunks) <= 1:
        return [fn(chunk) for chunk in chunks]
    return list(_executor(threads).map(fn, chunks))
