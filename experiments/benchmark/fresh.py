"""Running a measurement in a fresh process: nothing of the parent's (its heap, its BLAS
or PyTorch worker threads) touches what the child measures, and the parent gets the
result back, or the child's traceback."""

from __future__ import annotations

import multiprocessing
import queue as queues
import traceback
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def _child(fn: Callable[..., R], args: tuple, results) -> None:
    try:
        results.put(fn(*args))
    except BaseException:  # the parent re-raises it with the child's traceback
        results.put(traceback.format_exc())


def in_fresh_process(fn: Callable[..., R], args: tuple, what: str) -> R:
    """fn(*args) in a spawned process (fn importable, its result picklable and not a
    str). Raises RuntimeError naming `what`, with the child's traceback, if it fails or
    dies."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(fn, args, results))
    child.start()
    try:
        while True:
            try:
                outcome = results.get(timeout=5)
                break
            except queues.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the process of {what} died (exit code "
                                       f"{child.exitcode}) without a result") from None
    finally:
        child.join(timeout=60)
    if isinstance(outcome, str):
        raise RuntimeError(f"{what} failed in its process:\n{outcome}")
    return outcome
