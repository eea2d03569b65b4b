"""Training gives the same numbers whatever the number of BLAS threads.

A parallel sweep gives each job cores // jobs threads, and `make rerun` then
replays a job with all of them: the two must agree bit for bit.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step


def _weights_after_steps(model: str, batch: int, threads: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    net = build_model(model, init="pytorch")
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(2):
            train_step(net, loss_fn, opt, x, y)
    return {key: value.copy() for key, value in net.params.items()}


@pytest.mark.parametrize(("model", "batch"), [("seed", 128), ("vgg", 32)])
def test_one_and_two_blas_threads_give_bit_identical_weights(model, batch):
    one, two = (_weights_after_steps(model, batch, threads) for threads in (1, 2))
    for key in one:
        assert np.array_equal(one[key], two[key]), key


def test_two_chunk_threads_give_the_weights_of_one_thread():
    """experiments.threads.chunk_threads: convolution chunks on 2 threads, BLAS on 1."""
    from experiments.threads import chunk_threads

    def weights(threads: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((128, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, 128)
        net = build_model("seed", init="pytorch")
        opt = SGD(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        with chunk_threads(net, threads) as used:
            assert used == threads
            convs = [layer for layer in net.layers if hasattr(layer, "threads")]
            assert all(conv.threads == threads for conv in convs)
            for _ in range(2):
                train_step(net, SoftmaxCrossEntropy(), opt, x, y)
        assert all(layer.threads == 1 for layer in net.layers if hasattr(layer, "threads"))
        return {key: value.copy() for key, value in net.params.items()}

    one, two = weights(1), weights(2)
    for key in one:
        assert np.array_equal(one[key], two[key]), key


def test_chunk_threads_put_blas_on_one_thread_and_restore_it():
    from threadpoolctl import threadpool_info

    from experiments.threads import blas_threads, chunk_threads

    net = build_model("seed")
    with threadpool_limits(2, user_api="blas"):
        if blas_threads() < 2:
            pytest.skip("this BLAS runs on one thread only")
        with chunk_threads(net) as used:
            assert used == 2
            assert blas_threads() == 1
        assert blas_threads() == 2
    assert any(pool["user_api"] == "blas" for pool in threadpool_info())


def test_a_job_with_one_blas_thread_keeps_its_layers_on_one_thread():
    """A parallel sweep gives each job one BLAS thread: its layers must not take two cores."""
    from experiments.threads import chunk_threads

    net = build_model("vgg")
    with threadpool_limits(1, user_api="blas"), chunk_threads(net) as used:
        assert used == 1
        assert all(layer.threads == 1 for layer in net.layers if hasattr(layer, "threads"))
