"""Throughput of the NumPy network and of its PyTorch twin, each timed in fresh processes
that take turns, so that neither library's worker threads (which spin a while after
each call) run while the other is timed.

A round is one process a library, in alternating order (NumPy first, then PyTorch first,
...) so that a machine's drift falls on both alike. Each process times training steps
and inference passes in turns, then its own library's float32 matrix product on its own
threads: the yardstick of that process's "of ceiling" share, measured under the same
conditions as the steps it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments.benchmark.fresh import in_fresh_process
from experiments.benchmark.timing import (
    batch,
    interleaved_medians,
    matmul_operands,
    matmul_product,
    timed,
)

LIBRARIES = ("numpy", "torch")
_PRODUCTS = 5  # yardstick products timed after the steps, after one untimed


@dataclass(frozen=True)
class Turn:
    """One process's medians: seconds a training step and an inference pass take, and
    its own library's matrix product rate."""

    library: str
    train_s: float
    infer_s: float
    matmul_gflops: float


def _numpy_turn(model: str, batch_size: int, repeats: int, warmup: int, fuse: bool) -> Turn:
    from threadpoolctl import threadpool_limits

    from cnn.losses import SoftmaxCrossEntropy
    from cnn.models import build_model
    from cnn.optim import SGD
    from cnn.training import train_step
    from experiments.runtime.allocator import keep_freed_memory
    from experiments.runtime.threads import chunk_threads, current_blas_threads

    keep_freed_memory()  # as training does
    net, (x, y) = build_model(model, fuse=fuse), batch(batch_size)
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9)
    cores = current_blas_threads()
    with chunk_threads():
        seconds = interleaved_medians({"train": lambda: train_step(net, loss_fn, opt, x, y),
                                       "infer": lambda: net.infer(x)}, repeats, warmup)
    product, flops = matmul_product()
    with threadpool_limits(cores, user_api="blas"):  # as many threads as the layers had
        rate = _product_rate(product, flops)
    return Turn("numpy", seconds["train"], seconds["infer"], rate)


def _torch_turn(model: str, batch_size: int, repeats: int, warmup: int, fuse: bool) -> Turn:
    import torch

    x, y = batch(batch_size)
    train, infer = torch_steps(model, x, y)
    seconds = interleaved_medians({"train": train, "infer": infer}, repeats, warmup)
    a, b = (torch.from_numpy(m) for m in matmul_operands())
    _, flops = matmul_product()
    return Turn("torch", seconds["train"], seconds["infer"],
                _product_rate(lambda: torch.mm(a, b), flops))


def _product_rate(product: Callable[[], object], flops: int) -> float:
    """GFLOP/s of the fastest of the timed products: the ceiling is a limit, and on a busy
    machine a product on several BLAS threads is slowed far more than the steps' chunks,
    each on one (a median let NumPy's steps outrun their yardstick at a load of 8 on 2
    cores)."""
    return flops / min(timed(product, _PRODUCTS)) / 1e9


def torch_steps(
    model: str, x: np.ndarray, y: np.ndarray
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A training step and an inference pass of the PyTorch twin of the same network."""
    import torch

    from cnn.models import build_model
    from experiments.pytorch.twin import nhwc_to_nchw, to_torch

    twin = to_torch(build_model(model), copy_weights=False)
    tx, ty = nhwc_to_nchw(x), torch.from_numpy(y)
    opt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)

    def train() -> None:
        twin.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(twin(tx), ty).backward()
        opt.step()

    def infer() -> None:
        twin.eval()
        with torch.no_grad():
            twin(tx)

    return train, infer


def take_turn(library: str, model: str, batch_size: int, repeats: int, warmup: int,
              fuse: bool = False) -> Turn:
    """One library's turn, in this process; `fuse` builds the NumPy network fused (PyTorch's
    twin is the same network either way)."""
    turn = {"numpy": _numpy_turn, "torch": _torch_turn}[library]
    return turn(model, batch_size, repeats, warmup, fuse)


def rounds_in_fresh_processes(
    model: str, batch_size: int, repeats: int, warmup: int, rounds: int,
    libraries: tuple[str, ...] = LIBRARIES, fuse: bool = False,
) -> list[dict[str, Turn]]:
    """`rounds` rounds, each a fresh process per library, the order alternating."""
    if rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {rounds}")
    results = []
    for i in range(rounds):
        order = libraries if i % 2 == 0 else tuple(reversed(libraries))
        results.append({library: in_fresh_process(
            take_turn, (library, model, batch_size, repeats, warmup, fuse),
            f"{model}'s {library} turn") for library in order})
    return results
