"""What a benchmark prints and logs: a model's figures as a table, its ceiling and full
epoch, the ratios against PyTorch, and the `benchmarks` MLflow experiment."""

from __future__ import annotations

import platform
import statistics

import numpy as np

from experiments.benchmark.bounds import floor_lines
from experiments.benchmark.load import untrusted
from experiments.benchmark.models import ModelResult
from experiments.runtime.blas import Machine

_CAPPED = ("* capped at 100%: the step outran the matrix product its own process timed "
           "(the product was slowed while the steps were not, or the library does less "
           "work than the FLOP count says)")


def _share(r: ModelResult, library: str, what: str) -> tuple[str, bool]:
    share, capped = r.of_ceiling(library, what)
    return f"{share:.0%}{'*' if capped else ''}", capped


def ceiling_lines(r: ModelResult) -> list[str]:
    """`ceiling: 1,234 img/s training (NumPy at 39%, PyTorch at 51%), 3,700 img/s ...`,
    and why a share was capped if one was. Each share is taken against its own library's
    matrix product, timed in the same process as the steps."""
    c, libraries = r.ceiling, [lib for lib in ("numpy", "torch") if r.rounds and lib in r.rounds[0]]
    names = {"numpy": "NumPy", "torch": "PyTorch"}
    capped = False

    def part(images_per_s: float, what: str) -> str:
        nonlocal capped
        shares = []
        for library in libraries:
            text, was_capped = _share(r, library, what)
            shares.append(f"{names[library]} at {text}")
            capped |= was_capped
        word = "training" if what == "train" else "inference"
        return f"{images_per_s:,.0f} img/s {word} ({', '.join(shares)})"

    line = (f"ceiling: {part(c.train_images_per_s, 'train')}, "
            f"{part(c.infer_images_per_s, 'infer')}; a training step is {c.train_gflop:.2f} "
            f"GFLOP, an inference pass {c.infer_gflop:.2f}")
    return [line, _CAPPED] if capped else [line]


def ratio(r: ModelResult, what: str) -> tuple[float, float, float, str | None]:
    """(median, min, max) of NumPy's throughput over PyTorch's across the rounds, and why
    the median is not to be trusted (None when it is)."""
    ratios = r.ratios(what)
    return (statistics.median(ratios), min(ratios), max(ratios), untrusted(ratios, r.load))


def rounds_lines(r: ModelResult) -> list[str]:
    """The throughput, the ratios against PyTorch with their spread (or why not), and the
    machine's load while they were measured."""
    n = len(r.rounds)
    lines = [f"{n} round{'s' * (n != 1)} of fresh processes: NumPy train "
             f"{r.train_images_per_s:.0f} img/s, inference {r.infer_images_per_s:.0f} img/s"
             + (f"; PyTorch twin train {r.torch_train_images_per_s:.0f} img/s, inference "
                f"{r.torch_infer_images_per_s:.0f} img/s" if r.torch_train_images_per_s else "")]
    for what, word in (("train", "training"), ("infer", "inference")):
        if not r.torch_train_images_per_s:
            break
        median, low, high, reason = ratio(r, what)
        spread = f"{low:.2f}-{high:.2f} over the rounds"
        lines.append(f"{word} ratio vs PyTorch: " + (
            f"{median:.2f} ({spread})" if reason is None else f"not shown, {reason} ({spread})"))
    load = r.load
    others = ("" if load.others_cores is None else
              f"other processes kept {load.others_cores:.2f} of {load.cores} cores busy; ")
    lines.append(f"machine load while measured: {others}load average {load.load_average:.2f} "
                 f"the minute before")
    return lines


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
        *ceiling_lines(r),
        *rounds_lines(r),
    ]
    if r.floors is not None:
        lines += floor_lines(r.floors, r.copy_gbps, r.step_ms)
    if r.epoch is not None:
        e = r.epoch
        lines.append(f"one epoch of {e.images:,} synthetic images (the full-data recipe's "
                     f"normalisation, crops and flips): {e.seconds:.1f} s, "
                     f"{e.images_per_s:.0f} img/s; peak resident memory {e.peak_rss_mb:.0f} MB")
    return "\n".join(lines)


def summary_metrics(r: ModelResult, trusted_only: bool = True) -> dict[str, float]:
    """The model's headline figures, as its closing line prints them: a ratio against
    PyTorch only when it can be trusted, unless not `trusted_only` (as logged)."""
    metrics = {}
    if r.torch_train_images_per_s:
        for what in ("train", "infer"):
            median, _, _, reason = ratio(r, what)
            if reason is None or not trusted_only:
                metrics[f"{what}_ratio_vs_torch"] = median
    metrics["train_of_ceiling"] = r.of_ceiling("numpy", "train")[0]
    metrics["infer_of_ceiling"] = r.of_ceiling("numpy", "infer")[0]
    if r.torch_train_images_per_s:
        metrics["torch_train_of_ceiling"] = r.of_ceiling("torch", "train")[0]
        metrics["torch_infer_of_ceiling"] = r.of_ceiling("torch", "infer")[0]
    if r.epoch is not None:
        metrics["epoch_s"] = r.epoch.seconds
        metrics["peak_rss_mb"] = r.epoch.peak_rss_mb
    return metrics


def machine_lines(machine: Machine, pin: str | None) -> list[str]:
    """What the figures were measured on: the CPU, NumPy's BLAS, its kernel and threads,
    and a kernel pinned below the CPU's (experiments.runtime.blas.kernel_pin)."""
    lines = [f"CPU {machine.cpu}; NumPy's BLAS {machine.blas}, {machine.kernel} kernel, "
             f"{machine.threads} thread{'s' * (machine.threads != 1)}"]
    return lines + ([pin] if pin else [])


def log_to_mlflow(results: list[ModelResult], batch_size: int, machine: Machine,
                  pin: str | None, fuse: bool = False) -> None:
    """A run a model in the `benchmarks` experiment: the machine as every run tags it, the
    kernel pin, every figure (the ratios and their spread whether trusted or not)."""
    import mlflow

    from experiments.runs.logged import machine_tags
    from experiments.tracking.git import git_state, git_tags
    from experiments.tracking.store import use_store

    use_store(None, "benchmarks")
    commit, dirty, _ = git_state()
    for r in results:
        name = f"bench-{r.model}{'-fused' * fuse}-b{batch_size}"
        with mlflow.start_run(run_name=name):
            mlflow.set_tags({**git_tags(commit, dirty), **machine_tags(machine)})
            params = {
                "model": r.model,
                "batch_size": batch_size,
                "numpy": np.__version__,
                "machine": platform.processor() or platform.machine(),
                "rounds": len(r.rounds),
                "kernel_pin": pin or "none",
                "fuse": fuse,
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
                **summary_metrics(r, trusted_only=False),
                "load_average": r.load.load_average,
            }
            if r.load.others_cores is not None:
                metrics["others_cores"] = r.load.others_cores
            if r.torch_train_images_per_s:
                for what in ("train", "infer"):
                    _, low, high, reason = ratio(r, what)
                    metrics |= {f"{what}_ratio_min": low, f"{what}_ratio_max": high,
                                f"{what}_ratio_trusted": float(reason is None)}
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
    train_of_ceiling=0.39 ...` (the ratios only with a PyTorch comparison that can be
    trusted)."""
    lines = []
    for r in results:
        digits = {"epoch_s": 1, "peak_rss_mb": 0}
        figures = " ".join(f"{k}={v:.{digits.get(k, 2)}f}" for k, v in summary_metrics(r).items())
        lines.append(f"{r.model} {figures}")
    return lines
