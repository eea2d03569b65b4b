"""Benchmarks of whole networks: training and inference throughput beside the PyTorch
twin, each layer's time, and the peak memory of a training step."""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step
from experiments.benchmark.timing import LayerTiming, batch, interleaved_medians, time_layers
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.threads import chunk_threads, current_blas_threads


@dataclass
class ModelResult:
    model: str
    train_images_per_s: float
    infer_images_per_s: float
    layers: list[LayerTiming] = field(default_factory=list)
    matmul_gflops: float | None = None  # the yardstick, timed in the same rounds as the layers
    peak_rss_mb: float | None = None
    torch_train_images_per_s: float | None = None
    torch_infer_images_per_s: float | None = None

    @property
    def all_convs_gflops(self) -> float | None:
        """The convolutions' FLOPs over their time, all passes of all layers together; None
        without a convolution row. A block is one row with no FLOPs (its convolutions are
        timed with its other layers), so for a resnet this is the stem alone."""
        convs = [t for t in self.layers if t.conv_gflops]
        if not convs:
            return None
        seconds = sum(t.forward_ms + t.backward_ms for t in convs) / 1e3
        return sum(t.conv_gflops * (t.forward_ms + t.backward_ms) / 1e3 for t in convs) / seconds


def _peak_rss_child(model: str, batch_size: int, queue) -> None:
    keep_freed_memory()  # as in training, where freed memory stays in the process
    net = build_model(model)
    x, y = batch(batch_size)
    with chunk_threads():  # as in training: two chunks may be in flight at once
        train_step(net, SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9), x, y)
        train_step(net, SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9), x, y)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB on Linux


def peak_rss_mb(model: str, batch_size: int) -> float:
    """Peak resident memory of a fresh process that builds the model and takes training steps."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_rss_child, args=(model, batch_size, queue))
    child.start()
    value = queue.get(timeout=600)
    child.join()
    return value


def bench_model(
    model: str, batch_size: int, repeats: int, warmup: int, use_torch: bool
) -> ModelResult:
    """Training and inference throughput of the NumPy network, and of its PyTorch twin
    when use_torch, timed in turns (interleaved_medians); then each layer's time."""
    net = build_model(model)
    x, y = batch(batch_size)
    loss_fn, opt = SoftmaxCrossEntropy(), SGD(0.01, momentum=0.9)
    contenders = {
        "train": lambda: train_step(net, loss_fn, opt, x, y),
        "infer": lambda: net.infer(x),
    }
    if use_torch:
        contenders["torch_train"], contenders["torch_infer"] = torch_steps(model, x, y)
    cores = current_blas_threads()
    # The NumPy network runs as training runs it; PyTorch's own threads are not NumPy's BLAS.
    with chunk_threads():
        seconds = interleaved_medians(contenders, repeats, warmup)
        layers, matmul = time_layers(net, x, y, repeats, yardstick_threads=cores)
    images_per_s = {name: batch_size / s for name, s in seconds.items()}
    return ModelResult(
        model,
        images_per_s["train"],
        images_per_s["infer"],
        layers,
        matmul,
        torch_train_images_per_s=images_per_s.get("torch_train"),
        torch_infer_images_per_s=images_per_s.get("torch_infer"),
    )


def torch_steps(
    model: str, x: np.ndarray, y: np.ndarray
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A training step and an inference pass of the PyTorch twin of the same network."""
    import torch

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


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
