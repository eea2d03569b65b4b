"""Benchmarks of whole networks: training and inference throughput beside the PyTorch
twin, each layer's time inside training steps, and the ceiling of a step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cnn.layers import Conv2D
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.optim import SGD
from cnn.training import train_step
from experiments.benchmark.ceiling import Ceiling, add_conv_gflops, ceiling, training_flops
from experiments.benchmark.epoch import EpochResult
from experiments.benchmark.layer_times import LayerTiming, profile_steps
from experiments.benchmark.timing import batch, interleaved_medians, matmul_gflops, time_matmul
from experiments.runtime.threads import chunk_threads, current_blas_threads

# Yardstick products timed after the layer steps, besides the `repeats` before them.
_MATMUL_AFTER = 3


@dataclass
class ModelResult:
    model: str
    train_images_per_s: float
    infer_images_per_s: float
    layers: list[LayerTiming] = field(default_factory=list)
    step_ms: float | None = None  # median wall time of the steps the layers were timed in
    layers_ms: float | None = None  # median over those steps of the layer times' sum
    matmul_gflops: float | None = None  # the yardstick, at the layers' thread count
    ceiling: Ceiling | None = None
    epoch: EpochResult | None = None
    torch_train_images_per_s: float | None = None
    torch_infer_images_per_s: float | None = None

    @property
    def all_convs_gflops(self) -> float | None:
        """The convolutions' training FLOPs over their time, all passes of all
        convolutions (those inside blocks too) together; None without a convolution."""
        convs = [t for t in self.layers if isinstance(t.layer, Conv2D)]
        if not convs:
            return None
        seconds = sum(t.forward_ms + t.backward_ms for t in convs) / 1e3
        return sum(training_flops(t) for t in convs) / seconds / 1e9


def bench_model(
    model: str, batch_size: int, repeats: int, warmup: int, use_torch: bool
) -> ModelResult:
    """Training and inference throughput of the NumPy network, and of its PyTorch twin
    when use_torch, timed in turns (interleaved_medians); then the matmul yardstick in a
    block of its own, each layer's time inside training steps, and the ceiling."""
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
        # The yardstick on as many BLAS threads as the layers have chunk threads; its
        # spinning threads settle during the warm-up steps of the profile.
        products = time_matmul(repeats, cores)
        profile = profile_steps(net, x, y, repeats, warmup=max(warmup, 2))
        products += time_matmul(_MATMUL_AFTER, cores)
    gflops = matmul_gflops(products)
    add_conv_gflops(profile.layers)
    images_per_s = {name: batch_size / s for name, s in seconds.items()}
    return ModelResult(
        model,
        images_per_s["train"],
        images_per_s["infer"],
        profile.layers,
        profile.step_ms,
        profile.layers_ms,
        gflops,
        ceiling(profile.layers, batch_size, gflops),
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
