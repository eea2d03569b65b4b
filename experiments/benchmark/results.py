"""What a benchmark prints and logs: a model's figures as a table, the ratios against
PyTorch, and the `benchmarks` MLflow experiment."""

from __future__ import annotations

import platform

import numpy as np

from experiments.benchmark.models import ModelResult


def report(result: ModelResult) -> str:
    lines = [
        f"== {result.model}: train {result.train_images_per_s:.0f} img/s, "
        f"inference {result.infer_images_per_s:.0f} img/s",
        f"{'layer':<13} {'forward ms':>10} {'backward ms':>11} "
        f"{'conv GFLOP/s':>13} {'of matmul':>9}",
    ]
    for t in result.layers:
        conv = ""
        if t.conv_gflops:
            conv = f"{t.conv_gflops:13.1f} {t.conv_gflops / result.matmul_gflops:9.0%}"
        lines.append(f"{t.name:<13} {t.forward_ms:10.2f} {t.backward_ms:11.2f} {conv}")
    total = result.all_convs_gflops
    if total is not None:
        # Blocks (a resnet's) are one row each, without FLOPs: only the convs outside count.
        lines.append(f"{'all convs':<13} {'':>10} {'':>11} {total:13.1f} "
                     f"{total / result.matmul_gflops:9.0%}")
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

    from experiments.tracking.git import git_state, git_tags
    from experiments.tracking.store import use_store

    use_store(None, "benchmarks")
    commit, dirty, _ = git_state()
    for r in results:
        with mlflow.start_run(run_name=f"bench-{r.model}-b{batch_size}"):
            mlflow.set_tags(git_tags(commit, dirty))
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
            }
            if r.all_convs_gflops is not None:
                metrics["all_convs_gflops"] = r.all_convs_gflops
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


def ratio_lines(results: list[ModelResult]) -> list[str]:
    """One line a model with a PyTorch comparison: `vgg train_ratio_vs_torch=0.74 ...`."""
    lines = []
    for r in results:
        if r.torch_train_images_per_s:
            train_ratio = r.train_images_per_s / r.torch_train_images_per_s
            infer_ratio = r.infer_images_per_s / r.torch_infer_images_per_s
            lines.append(f"{r.model} train_ratio_vs_torch={train_ratio:.2f} "
                         f"infer_ratio_vs_torch={infer_ratio:.2f}")
    return lines
