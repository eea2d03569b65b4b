"""Benchmarks of whole networks: training and inference throughput beside the PyTorch
twin, each layer's time inside training steps, and the ceiling of a step."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from cnn.layers import Conv2D
from cnn.models import build_model
from experiments.benchmark.bounds import Floor, layer_floors
from experiments.benchmark.ceiling import Ceiling, add_conv_gflops, ceiling, training_flops
from experiments.benchmark.epoch import EpochResult
from experiments.benchmark.layer_times import LayerTiming, profile_steps
from experiments.benchmark.load import Load, LoadMeter
from experiments.benchmark.timing import batch, matmul_gflops, time_matmul
from experiments.benchmark.turns import LIBRARIES, Turn, rounds_in_fresh_processes
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
    rounds: list[dict[str, Turn]] = field(default_factory=list)  # each library's turn a round
    load: Load | None = None  # the machine's, while this model was measured
    floors: list[Floor] | None = None  # each leaf's floors, with --bounds (bounds.py)
    copy_gbps: float | None = None  # the bandwidth the memory floors assume

    def ratios(self, what: str) -> list[float]:
        """NumPy's throughput over PyTorch's, a round each; `what` is "train" or "infer"."""
        return [getattr(r["torch"], f"{what}_s") / getattr(r["numpy"], f"{what}_s")
                for r in self.rounds if "torch" in r]

    def of_ceiling(self, library: str, what: str) -> tuple[float, bool]:
        """The median over rounds of the share of the ceiling `library` reached, each round
        against the product its own process timed, and whether it was capped at 1.

        A step cannot do its counted FLOPs faster than its library's large product does:
        a share above 1 means the product was slowed while the steps were not (a busy
        machine), or the library does less work than the FLOP count says."""
        flops = self.ceiling.train_gflop if what == "train" else self.ceiling.infer_gflop
        share = statistics.median(
            flops / (getattr(r[library], f"{what}_s") * r[library].matmul_gflops)
            for r in self.rounds)
        return min(share, 1.0), share > 1.0

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
    model: str, batch_size: int, repeats: int, warmup: int, use_torch: bool, rounds: int = 3,
    fuse: bool = False, bounds: bool = False,
) -> ModelResult:
    """The matmul yardstick in a block of its own, each layer's time inside training
    steps, and the ceiling, in this process; then training and inference throughput of
    the NumPy network and, when use_torch, of its PyTorch twin, in `rounds` rounds of
    fresh processes (experiments.benchmark.turns), with the machine's load meanwhile.
    `fuse` builds the NumPy network with its fused layers (cnn.models.build_model);
    `bounds` adds each leaf's floors (experiments.benchmark.bounds)."""
    meter = LoadMeter()
    net = build_model(model, fuse=fuse)
    x, y = batch(batch_size)
    cores = current_blas_threads()
    with chunk_threads():  # the NumPy network runs as training runs it
        # The yardstick on as many BLAS threads as the layers have chunk threads; its
        # spinning threads settle during the warm-up steps of the profile.
        products = time_matmul(repeats, cores)
        profile = profile_steps(net, x, y, repeats, warmup=max(warmup, 2))
        products += time_matmul(_MATMUL_AFTER, cores)
        floors, gbps = layer_floors(profile.layers, repeats) if bounds else (None, None)
    gflops = matmul_gflops(products)
    add_conv_gflops(profile.layers)
    libraries = LIBRARIES if use_torch else ("numpy",)
    turns = rounds_in_fresh_processes(model, batch_size, repeats, warmup, rounds, libraries,
                                      fuse=fuse)
    load = meter.stop()

    def images_per_s(library: str, what: str) -> float | None:
        if library not in libraries:
            return None
        return batch_size / statistics.median(getattr(t[library], f"{what}_s") for t in turns)

    return ModelResult(
        model,
        images_per_s("numpy", "train"),
        images_per_s("numpy", "infer"),
        profile.layers,
        profile.step_ms,
        profile.layers_ms,
        gflops,
        ceiling(profile.layers, batch_size, gflops),
        torch_train_images_per_s=images_per_s("torch", "train"),
        torch_infer_images_per_s=images_per_s("torch", "infer"),
        rounds=turns,
        load=load,
        floors=floors,
        copy_gbps=gbps,
    )


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
