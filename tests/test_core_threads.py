"""Training gives the same numbers whatever the number of BLAS threads.

A parallel sweep gives each job cores // jobs threads, and `make rerun` then
replays a job with all of them: the two must agree bit for bit.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cnn import parallel
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step


def _weights_after_steps(model: str, batch: int, within) -> tuple[object, dict[str, np.ndarray]]:
    """Two training steps inside the context `within(net)`; the network and its weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    net = build_model(model, init="pytorch")
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    with within(net):
        for _ in range(2):
            train_step(net, loss_fn, opt, x, y)
    return net, {key: value.copy() for key, value in net.params.items()}


@pytest.mark.parametrize(("model", "batch"), [("seed", 128), ("vgg", 32)])
def test_one_and_two_blas_threads_give_bit_identical_weights(model, batch):
    (_, one), (_, two) = (
        _weights_after_steps(model, batch, lambda net, t=t: threadpool_limits(t, user_api="blas"))
        for t in (1, 2)
    )
    for key in one:
        assert np.array_equal(one[key], two[key]), key


def test_two_chunk_threads_give_the_weights_of_one_thread():
    """experiments.runtime.threads.chunk_threads: layers' batch chunks on 2 threads, BLAS on 1."""
    from experiments.runtime.threads import chunk_threads

    @contextmanager
    def on_chunk_threads(threads: int):
        with chunk_threads(threads) as used:
            assert used == threads == parallel.current_threads()
            yield

    (_, one), (_, two) = (
        _weights_after_steps("seed", 128, lambda net, t=t: on_chunk_threads(t))
        for t in (1, 2)
    )
    assert parallel.current_threads() == 1  # restored
    for key in one:
        assert np.array_equal(one[key], two[key]), key


def test_chunk_threads_put_blas_on_one_thread_and_restore_it():
    from threadpoolctl import threadpool_info

    from experiments.runtime.threads import chunk_threads, current_blas_threads

    with threadpool_limits(2, user_api="blas"):
        if current_blas_threads() < 2:
            pytest.skip("this BLAS runs on one thread only")
        with chunk_threads() as used:
            assert used == 2
            assert current_blas_threads() == 1
        assert current_blas_threads() == 2
    assert any(pool["user_api"] == "blas" for pool in threadpool_info())


def test_a_job_with_one_blas_thread_keeps_its_layers_on_one_thread():
    """A parallel sweep gives each job one BLAS thread: its layers must not take two cores."""
    from experiments.runtime.threads import chunk_threads

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
