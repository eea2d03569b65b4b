"""What a benchmark prints and logs: a model's figures as a table, its ceiling and full
epoch, the ratios against PyTorch, and the `benchmarks` MLflow experiment."""

from __future__ import annotations

import platform

import numpy as np

from experiments.benchmark.models import ModelResult


def _share(images_per_s: float | None, ceiling: float) -> str:
    return f"{images_per_s / ceiling:.0%}" if images_per_s else "-"


def ceiling_line(r: ModelResult) -> str:
    """`ceiling: 1,234 img/s training (NumPy at 39%, PyTorch at 51%), 3,700 img/s ...`"""
    c = r.ceiling

    def part(ceiling: float, what: str, numpy: float, torch: float | None) -> str:
        shares = f"NumPy at {_share(numpy, ceiling)}"
        if torch:
            shares += f", PyTorch at {_share(torch, ceiling)}"
        return f"{ceiling:,.0f} img/s {what} ({shares})"

    train = part(c.train_images_per_s, "training", r.train_images_per_s,
                 r.torch_train_images_per_s)
    infer = part(c.infer_images_per_s, "inference", r.infer_images_per_s,
                 r.torch_infer_images_per_s)
    return (f"ceiling: {train}, {infer}; a training step is {c.train_gflop:.2f} GFLOP, "
            f"an inference pass {c.infer_gflop:.2f}")


def report(result: ModelResult) -> str:
    r = result
    lines = [
        f"== {r.model}: train {r.train_images_per_s:.0f} img/s, "
        f"inference {r.infer_images_per_s:.0f} img/s",
        f"{'layer':<13} {'forward ms':>10} {'backward ms':>11} "
        f"{'conv GFLOP/s':>13} {'of matmul':>9}",
    ]
    for t in r.layers:
        conv = ""
        if t.conv_gflops:
            conv = f"{t.conv_gflops:13.1f} {t.conv_gflops / r.matmul_gflops:9.0%}"
        lines.append(f"{t.name:<13} {t.forward_ms:10.2f} {t.backward_ms:11.2f} {conv}".rstrip())
    total = r.all_convs_gflops
    if total is not None:
        lines.append(f"{'all convs':<13} {'':>10} {'':>11} {total:13.1f} "
                     f"{total / r.matmul_gflops:9.0%}")
    lines += [
        f"the layers take {r.layers_ms:.1f} ms of a {r.step_ms:.1f} ms training step "
        f"({r.layers_ms / r.step_ms:.0%}, medians over the same steps; the rest is the loss, "
        f"the optimiser step and blocks' own sums)",
        f"NumPy float32 matrix product, timed in a block of its own: "
        f"{r.matmul_gflops:.1f} GFLOP/s",
        ceiling_line(r),
    ]
    if r.epoch is not None:
        e = r.epoch
        lines.append(f"one epoch of {e.images:,} synthetic images (the full-data recipe's "
                     f"normalisation, crops and flips): {e.seconds:.1f} s, "
                     f"{e.images_per_s:.0f} img/s; peak resident memory {e.peak_rss_mb:.0f} MB")
    if r.torch_train_images_per_s:
        lines.append(
            f"PyTorch twin: train {r.torch_train_images_per_s:.0f} img/s, "
            f"inference {r.torch_infer_images_per_s:.0f} img/s"
        )
    return "\n".join(lines)


def summary_metrics(r: ModelResult) -> dict[str, float]:
    """The model's headline figures, as logged and as its closing line prints them."""
    c = r.ceiling
    metrics = {"train_of_ceiling": r.train_images_per_s / c.train_images_per_s,
               "infer_of_ceiling": r.infer_images_per_s / c.infer_images_per_s}
    if r.torch_train_images_per_s:
        metrics = {
            "train_ratio_vs_torch": r.train_images_per_s / r.torch_train_images_per_s,
            "infer_ratio_vs_torch": r.infer_images_per_s / r.torch_infer_images_per_s,
            **metrics,
            "torch_train_of_ceiling": r.torch_train_images_per_s / c.train_images_per_s,
            "torch_infer_of_ceiling": r.torch_infer_images_per_s / c.infer_images_per_s,
        }
    if r.epoch is not None:
        metrics["epoch_s"] = r.epoch.seconds
        metrics["peak_rss_mb"] = r.epoch.peak_rss_mb
    return metrics


def log_to_mlflow(results: list[ModelResult], batch_size: int) -> None:
    import mlflow

    from experiments.tracking.git import git_state, git_tags
    from experiments.tracking.store import use_store

    use_store(None, "benchmarks")
    commit, dirty, _ = git_state()
    for r in results:
        with mlflow.start_run(run_name=f"bench-{r.model}-b{batch_size}"):
            mlflow.set_tags(git_tags(commit, dirty))
            params = {
                "model": r.model,
                "batch_size": batch_size,
                "numpy": np.__version__,
                "machine": platform.processor() or platform.machine(),
            }
            if r.epoch is not None:
                params["epoch_images"] = r.epoch.images
            mlflow.log_params(params)
            metrics = {
                "train_images_per_s": r.train_images_per_s,
                "infer_images_per_s": r.infer_images_per_s,
                "matmul_gflops": r.matmul_gflops,
                "step_ms": r.step_ms,
                "layers_ms": r.layers_ms,
                "ceiling_train_images_per_s": r.ceiling.train_images_per_s,
                "ceiling_infer_images_per_s": r.ceiling.infer_images_per_s,
                **summary_metrics(r),
            }
            if r.all_convs_gflops is not None:
                metrics["all_convs_gflops"] = r.all_convs_gflops
            if r.epoch is not None:
                metrics["epoch_images_per_s"] = r.epoch.images_per_s
            if r.torch_train_images_per_s:
                metrics["torch_train_images_per_s"] = r.torch_train_images_per_s
                metrics["torch_infer_images_per_s"] = r.torch_infer_images_per_s
            for t in r.layers:
                metrics[f"{t.name}.forward_ms"] = t.forward_ms
                metrics[f"{t.name}.backward_ms"] = t.backward_ms
                if t.conv_gflops:
                    metrics[f"{t.name}.gflops"] = t.conv_gflops
            mlflow.log_metrics(metrics)


def summary_lines(results: list[ModelResult]) -> list[str]:
    """One line a model: `vgg train_ratio_vs_torch=0.74 infer_ratio_vs_torch=0.81
    train_of_ceiling=0.39 ...` (the ratios only with a PyTorch comparison)."""
    lines = []
    for r in results:
        digits = {"epoch_s": 1, "peak_rss_mb": 0}
        figures = " ".join(f"{k}={v:.{digits.get(k, 2)}f}" for k, v in summary_metrics(r).items())
        lines.append(f"{r.model} {figures}")
    return lines
