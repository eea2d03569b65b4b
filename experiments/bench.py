"""How fast is the NumPy network, and how close to the machine's limit?

    python -m experiments.bench                 # both models, batch 128, float32
    python -m experiments.bench --models vgg --repeats 10 --no-epoch --no-mlflow

It first says what it measures on: the CPU, NumPy's BLAS, its version, kernel and
threads, and a line when an environment variable pins the kernel below what the CPU
runs (experiments.runtime.blas.kernel_pin). Then for each model:
- each layer's forward and backward time, measured inside real training steps
  (a block's layers one by one), and each convolution's GFLOP/s next to what
  NumPy's own matrix product reaches, timed in a block of its own on the
  layers' thread count; then the sum of the layer times beside the step's;
- the ceiling: a training step's (and an inference pass's) FLOPs over the
  matrix product's rate, in images per second, and the share of it NumPy and
  PyTorch reach, each against its own product timed in the same process (at most 1);
- training and inference throughput, in --rounds rounds of fresh processes, NumPy's
  and its PyTorch twin's (experiments.pytorch.twin, when installed) in turn, so that
  neither's worker threads run in the other's time (experiments.benchmark.turns); the
  ratio's median and range, or, when the rounds disagree or other processes were busy,
  why it is not shown (experiments.benchmark.load);
- one full epoch of 50,000 synthetic images (--epoch-images) trained as the
  full-data recipe trains, in a fresh process: its time and that process's
  peak resident memory, data set included;
- with --bounds, where each layer's milliseconds go: its products at their own shapes,
  its patch gathering and its memory traffic, beside its time (experiments.benchmark.bounds).

It ends with one line a model:

    vgg train_ratio_vs_torch=0.74 infer_ratio_vs_torch=0.81 train_of_ceiling=0.39 ...

(the ratios only when they can be trusted).

Results are logged to the MLflow experiment `benchmarks` unless --no-mlflow.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from cnn.models import ARCHITECTURES
from experiments.benchmark.epoch import epoch_in_fresh_process
from experiments.benchmark.models import ModelResult, bench_model, torch_available
from experiments.benchmark.results import log_to_mlflow, machine_lines, report, summary_lines
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.blas import cpu_flags, kernel_pin, this_machine


def main(argv: list[str] | None = None) -> list[ModelResult]:
    """Entry point of `python -m experiments.bench` (and `make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["seed", "vgg"], choices=list(ARCHITECTURES))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of fresh processes timing NumPy and PyTorch in turn")
    parser.add_argument("--epoch-images", type=int, default=50_000,
                        help="images of the full epoch timed in a fresh process")
    parser.add_argument("--no-epoch", action="store_true",
                        help="skip the full epoch and its peak memory")
    parser.add_argument("--fuse", action="store_true",
                        help="build the NumPy networks with batch norm and ReLU fused")
    parser.add_argument("--bounds", action="store_true",
                        help="add each layer's floors: its products, patches and memory traffic")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--no-mlflow", action="store_true", help="print only, log nothing")
    args = parser.parse_args(argv)
    if args.epoch_images < 1:
        parser.error(f"--epoch-images must be at least 1, got {args.epoch_images}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    keep_freed_memory()  # as train does: the figures are those of a real run

    print(f"NumPy {np.__version__}, batch {args.batch_size}, float32")
    machine, pin = this_machine(), kernel_pin(os.environ, cpu_flags())
    for line in machine_lines(machine, pin):
        print(line)
    use_torch = not args.no_torch and torch_available()
    if not use_torch and not args.no_torch:
        print("PyTorch is not installed: no comparison (pip install torch==2.13.0)")
    results = []
    for model in args.models:
        result = bench_model(model, args.batch_size, args.repeats, args.warmup, use_torch,
                             args.rounds, fuse=args.fuse, bounds=args.bounds)
        if not args.no_epoch:
            result.epoch = epoch_in_fresh_process(model, args.batch_size, args.epoch_images)
        print(report(result), flush=True)
        results.append(result)
    if not args.no_mlflow:
        log_to_mlflow(results, args.batch_size, machine, pin, fuse=args.fuse)
    for line in summary_lines(results):
        print(line)
    return results


if __name__ == "__main__":
    main()
