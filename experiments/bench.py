"""How fast is the NumPy network, and how close to the machine's limit?

    python -m experiments.bench                 # both models, batch 128, float32
    python -m experiments.bench --models vgg --repeats 10 --no-mlflow

For each model it prints training and inference throughput (median of several
timed repeats after a warm-up), each layer's forward and backward time, each
convolution's GFLOP/s next to what NumPy's own matrix product reaches on this
machine, timed between the same layer passes, and the peak resident memory of a
training step (measured in a fresh process). When PyTorch is installed it times
a twin of the same network (experiments.pytorch.twin), in turns with the
NumPy one, and ends with one line a model:

    vgg train_ratio_vs_torch=0.74 infer_ratio_vs_torch=0.81

Results are logged to the MLflow experiment `benchmarks` unless --no-mlflow.
"""

from __future__ import annotations

import argparse

import numpy as np

from cnn.models import ARCHITECTURES
from experiments.benchmark.models import ModelResult, bench_model, peak_rss_mb, torch_available
from experiments.benchmark.results import log_to_mlflow, ratio_lines, report
from experiments.runtime.allocator import keep_freed_memory


def main(argv: list[str] | None = None) -> list[ModelResult]:
    """Entry point of `python -m experiments.bench` (and `make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["seed", "vgg"], choices=list(ARCHITECTURES))
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
    for line in ratio_lines(results):
        print(line)
    return results


if __name__ == "__main__":
    main()
