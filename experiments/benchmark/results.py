"""How fast is the NumPy network, and how close to the machine's limit?

    python -m experiments.bench                 # both models, batch 128, float32
    python -m experiments.bench --models vgg --repeats 10 --no-mlflow

For each model it prints training and inference throughput (median of several
timed repeats after a warm-up), each layer's forward and backward time, each
convolution's GFLOP/s next to what NumPy's own matrix product reaches on this
machine, timed between the same layer passes, and the peak resident memory of a
training step (measured in a fresh process). When PyTorch is installed it times
a twin of the same network (experiments.torch_reference), in turns with the
NumPy one, and ends with one line a model:

    vgg train_ratio_vs_torch=0.74 infer_ratio_vs_torch=0.81

Results are logged to the MLflow experiment `benchmarks` unless --no-mlflow.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from cnn.layers import Conv2D
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.network import Sequential
from cnn.optim import SGD
from cnn.training import train_step
from experiments.allocator import keep_freed_memory
from experiments.threads import chunk_threads, current_blas_threads

INPUT_SHAPE = (32, 32, 3)


def interleaved_medians(
    contenders: dict[str, Callable[[], object]], repeats: int, warmup: int, block: int = 3
) -> dict[str, float]:
    """Median seconds of `repeats` timed calls of each contender, taken in turns.

    A shared machine drifts in speed (other jobs, a busy host): timed in turns, the
    contenders meet the same conditions, so their ratio holds even when the
    absolute figures move. Each turn calls one contender `block` times and times
    all but the first: right after a switch, the other library's worker threads
    still spin for a moment and take a core (timed back to back, one call each,
    PyTorch ran at half its speed).
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    while any(len(ts) < repeats for ts in times.values()):
        for name, fn in contenders.items():
            fn()
            for _ in range(block - 1):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts[:repeats]) for name, ts in times.items()}


def matmul_product() -> tuple[Callable[[], object], int]:
    """A large float32 matrix product and its FLOPs: what NumPy's BLAS reaches on it is
    the yardstick for convolutions."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4096, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    return (lambda: a @ b), 2 * 4096 * 1024 * 1024


def batch(batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *INPUT_SHAPE), dtype=np.float32)
    return x, rng.integers(0, 10, batch_size)


@dataclass
class LayerTiming:
    name: str
    forward_ms: float
    backward_ms: float
    conv_gflops: float | None = None


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
    def all_convs_gflops(self) -> float:
        """The convolutions' FLOPs over their time, all passes of all layers together."""
        convs = [t for t in self.layers if t.conv_gflops]
        seconds = sum(t.forward_ms + t.backward_ms for t in convs) / 1e3
        return sum(t.conv_gflops * (t.forward_ms + t.backward_ms) / 1e3 for t in convs) / seconds


def conv_flops(layer: Conv2D, out_shape: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of one forward pass: every output value is a KH*KW*C dot product."""
    n, ho, wo, f = out_shape
    kh, kw = layer.kernel
    return 2 * n * ho * wo * f * kh * kw * layer.in_channels


def time_layers(
    net: Sequential,
    x: np.ndarray,
    y: np.ndarray,
    repeats: int,
    yardstick_threads: int | None = None,
) -> tuple[list[LayerTiming], float]:
    """Per-layer forward and backward time (median over repeats) in a training step, and
    the matmul yardstick's GFLOP/s, timed once a round so that it meets the same machine,
    on `yardstick_threads` BLAS threads (by default, as many as the layers' BLAS has)."""
    loss_fn = SoftmaxCrossEntropy()
    forward = {name: [] for name in net.names}
    backward = {name: [] for name in net.names}
    product, product_flops = matmul_product()
    yardstick = []
    shapes = {}
    for _ in range(repeats + 1):  # the first pass warms up
        with threadpool_limits(yardstick_threads, user_api="blas"):
            start = time.perf_counter()
            product()
            yardstick.append(time.perf_counter() - start)
        h = x
        for name, layer in net.named_layers():
            start = time.perf_counter()
            h = layer.forward(h, training=True)
            forward[name].append(time.perf_counter() - start)
            shapes[name] = h.shape
        loss_fn.forward(h, y)
        d = loss_fn.backward()
        for i, (name, layer) in reversed(list(enumerate(net.named_layers()))):
            start = time.perf_counter()
            # As in training, the first layer skips the input gradient nobody needs.
            d = layer.backward(d, input_grad=False) if i == 0 else layer.backward(d)
            backward[name].append(time.perf_counter() - start)
    timings = []
    for name, layer in net.named_layers():
        fw, bw = statistics.median(forward[name][1:]), statistics.median(backward[name][1:])
        gflops = None
        if isinstance(layer, Conv2D):
            # Backward does two products of forward's size (dW and dx), or one for the first layer.
            flops = conv_flops(layer, shapes[name]) * (2 if name == net.names[0] else 3)
            gflops = flops / (fw + bw) / 1e9
        timings.append(LayerTiming(name, fw * 1e3, bw * 1e3, gflops))
    return timings, product_flops / statistics.median(yardstick[1:]) / 1e9


def _peak_rss_child(model: str, batch_size: int, queue) -> None:
    keep_freed_memory()  # as in training, where freed memory stays in the process
    net = build_model(model)
    x, y = batch(batch_size)
    with chunk_threads(net):  # as in training: two chunks may be in flight at once
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
        "infer": lambda: net.forward(x, training=False),
    }
    if use_torch:
        contenders["torch_train"], contenders["torch_infer"] = torch_steps(model, x, y)
    cores = current_blas_threads()
    # The NumPy network runs as training runs it; PyTorch's own threads are not NumPy's BLAS.
    with chunk_threads(net):
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

    from experiments.torch_reference import nhwc_to_nchw, to_torch

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


def report(result: ModelResult) -> str:
    lines = [
        f"== {result.model}: train {result.train_images_per_s:.0f} img/s, "
        f"inference {result.infer_images_per_s:.0f} img/s",
        f"{'layer':<10} {'forward ms':>10} {'backward ms':>11} "
        f"{'conv GFLOP/s':>13} {'of matmul':>9}",
    ]
    for t in result.layers:
        conv = ""
        if t.conv_gflops:
            conv = f"{t.conv_gflops:13.1f} {t.conv_gflops / result.matmul_gflops:9.0%}"
        lines.append(f"{t.name:<10} {t.forward_ms:10.2f} {t.backward_ms:11.2f} {conv}")
    total = result.all_convs_gflops
    lines.append(
        f"{'all convs':<10} {'':>10} {'':>11} {total:13.1f} {total / result.matmul_gflops:9.0%}"
    )
    lines.append(
        f"NumPy float32 matrix product, timed between the layer passes: "
        f"{result.matmul_gflops:.1f} GFLOP/s"
    )
    if result.peak_rss_mb is not None:
        lines.append(f"peak resident memory of a training step: {result.peak_rss_mb:.0f} MB")
    if result.torch_train_images_per_s:
        lines.append(
            f"PyTorch twin: train {result.torch_train_images_per_s:.0f} img/s, "
            f"inference {result.torch_infer_images_per_s:.0f} img/s"
        )
    return "\n".join(lines)


def log_to_mlflow(results: list[ModelResult], batch_size: int) -> None:
    import mlflow

    from experiments.tracking import git_state, use_store

    use_store(None, "benchmarks")
    commit, dirty, _ = git_state()
    for r in results:
        with mlflow.start_run(run_name=f"bench-{r.model}-b{batch_size}"):
            mlflow.set_tags({"git_commit": commit, "git_dirty": str(dirty)})
            mlflow.log_params(
                {
                    "model": r.model,
                    "batch_size": batch_size,
                    "numpy": np.__version__,
                    "machine": platform.processor() or platform.machine(),
                }
            )
            metrics = {
                "train_images_per_s": r.train_images_per_s,
                "infer_images_per_s": r.infer_images_per_s,
                "matmul_gflops": r.matmul_gflops,
                "all_convs_gflops": r.all_convs_gflops,
            }
            if r.peak_rss_mb is not None:
                metrics["peak_rss_mb"] = r.peak_rss_mb
            if r.torch_train_images_per_s:
                metrics["torch_train_images_per_s"] = r.torch_train_images_per_s
                metrics["torch_infer_images_per_s"] = r.torch_infer_images_per_s
                metrics["train_ratio_vs_torch"] = r.train_images_per_s / r.torch_train_images_per_s
                metrics["infer_ratio_vs_torch"] = r.infer_images_per_s / r.torch_infer_images_per_s
            for t in r.layers:
                metrics[f"{t.name}.forward_ms"] = t.forward_ms
                metrics[f"{t.name}.backward_ms"] = t.backward_ms
                if t.conv_gflops:
                    metrics[f"{t.name}.gflops"] = t.conv_gflops
            mlflow.log_metrics(metrics)


def main(argv: list[str] | None = None) -> list[ModelResult]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["seed", "vgg"], choices=["seed", "vgg"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probe")
    parser.add_argument("--no-mlflow", action="store_true", help="print only, log nothing")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as train does: the figures are those of a real run

    print(f"NumPy {np.__version__}, batch {args.batch_size}, float32")
    use_torch = not args.no_torch and torch_available()
    if not use_torch and not args.no_torch:
        print("PyTorch is not installed: no comparison (pip install torch==2.13.0)")
    results = []
    for model in args.models:
        result = bench_model(model, args.batch_size, args.repeats, args.warmup, use_torch)
        if not args.no_memory:
            result.peak_rss_mb = peak_rss_mb(model, args.batch_size)
        print(report(result), flush=True)
        results.append(result)
    if not args.no_mlflow:
        log_to_mlflow(results, args.batch_size)
    for r in results:
        if r.torch_train_images_per_s:
            train_ratio = r.train_images_per_s / r.torch_train_images_per_s
            infer_ratio = r.infer_images_per_s / r.torch_infer_images_per_s
            print(
                f"{r.model} train_ratio_vs_torch={train_ratio:.2f} "
                f"infer_ratio_vs_torch={infer_ratio:.2f}"
            )
    return results


if __name__ == "__main__":
    main()
