"""Training gives the same numbers whatever the number of threads, by construction.

A parallel sweep gives each job cores // jobs threads, and `make rerun` then replays a job
with all of them: the two must agree bit for bit. They do because every run trains inside
experiments.runtime.threads.chunk_threads: the layers' chunks are cut by the batch alone,
and BLAS is on one thread, so no product is split by BLAS's own thread count. Outside that
scope, BLAS on 1 or 2 threads may round differently: there the numbers agree within the
rounding of the longest sum, not bit for bit.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from rounding import gamma, longest_sum
from threadpoolctl import threadpool_limits

from cnn import parallel
from cnn.layers import Conv2D
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step
from experiments.runtime.threads import chunk_threads, current_blas_threads

# Every model family, small enough for a few steps on 2 cores.
FAMILIES = [
    ("seed", {}, 64),
    ("vgg", {"widths": [16, 32, 32]}, 32),
    ("custom", {}, 64),
    ("resnet", {"depth": 8, "widths": [8, 16, 16]}, 32),
    ("plain", {"depth": 8, "widths": [8, 16, 16]}, 32),
]


def _steps(model: str, knobs: dict, batch: int, within, dtype=np.float32, steps: int = 3):
    """The weights before and after `steps` training steps inside the context `within`."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(dtype)
    y = rng.integers(0, 10, batch)
    net = build_model(model, init="pytorch", dtype=dtype, **knobs)
    before = {key: value.copy() for key, value in net.params.items()}
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    with within:
        for _ in range(steps):
            train_step(net, loss_fn, opt, x, y)
    return before, {key: value.copy() for key, value in net.params.items()}


@contextmanager
def _on_chunk_threads(threads: int):
    with chunk_threads(threads) as used:
        assert used == threads == parallel.current_threads()
        assert current_blas_threads() == 1
        yield


@pytest.mark.parametrize(("model", "knobs", "batch"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_one_and_two_chunk_threads_give_bit_identical_weights(model, knobs, batch,
                                                              monkeypatch):
    # Small chunks, so that every layer cuts its batch in many and the threads share them.
    monkeypatch.setattr(Conv2D, "chunk_bytes", 64 << 10)
    monkeypatch.setattr(parallel, "ROW_CHUNK_BYTES", 16 << 10)
    with threadpool_limits(2, user_api="blas"):  # what BLAS had does not matter either
        _, one = _steps(model, knobs, batch, _on_chunk_threads(1))
    _, two = _steps(model, knobs, batch, _on_chunk_threads(2))
    assert parallel.current_threads() == 1  # restored
    for key in one:
        assert np.array_equal(one[key], two[key]), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("model", "batch"), [("seed", 128), ("vgg", 32)])
def test_one_and_two_blas_threads_agree_within_the_rounding_of_the_longest_sum(model, batch,
                                                                               dtype):
    """Outside chunk_threads nothing fixes how BLAS splits a product: compare each weight's
    change over the steps, relative to its size, against the worst case of the longest
    sum a step takes (a weight gradient over batch x 32 x 32 pixels)."""
    before, one = _steps(model, {}, batch, threadpool_limits(1, user_api="blas"), dtype, 2)
    _, two = _steps(model, {}, batch, threadpool_limits(2, user_api="blas"), dtype, 2)
    tolerance = gamma(longest_sum(before, batch * 32 * 32), dtype)
    for key in one:
        change = np.abs(one[key] - before[key]).max()
        assert np.abs(one[key] - two[key]).max() <= tolerance * change, key


def test_chunk_threads_put_blas_on_one_thread_and_restore_it():
    from threadpoolctl import threadpool_info

    with threadpool_limits(2, user_api="blas"):
        if current_blas_threads() < 2:
            pytest.skip("this BLAS runs on one thread only")
        for threads in (None, 1, 2):
            with chunk_threads(threads) as used:
                assert used == (2 if threads is None else threads)
                assert current_blas_threads() == 1
                with chunk_threads() as inner:  # a block inside keeps the outer's threads
                    assert inner == used == parallel.current_threads()
            assert current_blas_threads() == 2
    assert any(pool["user_api"] == "blas" for pool in threadpool_info())


def test_a_job_with_one_blas_thread_keeps_its_layers_on_one_thread():
    """A parallel sweep gives each job one BLAS thread: its layers must not take two cores."""
    with threadpool_limits(1, user_api="blas"), chunk_threads() as used:
        assert used == 1 == parallel.current_threads()


def test_the_threads_scope_nests_restores_and_stays_in_its_own_thread():
    """cnn.parallel.threads is a scope: inner blocks win, leaving one restores the outer
    setting (also after an error), and another thread does not see it."""
    from concurrent.futures import ThreadPoolExecutor

    assert parallel.current_threads() == 1
    with parallel.threads(2):
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(parallel.current_threads).result() == 1
        with pytest.raises(RuntimeError), parallel.threads(3):
            assert parallel.current_threads() == 3
            raise RuntimeError
        assert parallel.current_threads() == 2
    assert parallel.current_threads() == 1
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="threads"), parallel.threads(bad):
            pass
