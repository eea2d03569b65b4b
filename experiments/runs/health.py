"""Health of a configured run: the checks before training, and the per-layer statistics
during it (see cnn.diagnostics), as a tracked run logs them and `make diagnose` prints them.

The checks: the loss at initialisation against ln(K), a float64 gradient check of the
actual network on real images, per-layer activation statistics, dead ReLUs, the
update-to-weight ratio of a first step, and whether the network can memorise 20 images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np

from cnn.diagnostics import Check, LayerMonitor, health_checks, health_report
from cnn.diagnostics.sharpness import SharpnessMonitor
from cnn.diagnostics.statistics import NetworkStats, layer_statistics
from cnn.diagnostics.verdict import Status, Verdict
from experiments.config.validate import group_args
from experiments.runs.build import Run, make_optimizer_from
from experiments.tracking import tags
from experiments.tracking.layer_metrics import layer_metrics
from experiments.tracking.metadata import log_safely
from experiments.tracking.offline import OfflineBuffer

log = logging.getLogger(__name__)

PROBE_IMAGES = 128
GRADCHECK_IMAGES = 4  # of the probe images: each entry checked costs two forward passes
OVERFIT_IMAGES = 20


@dataclass
class Diagnosis:
    checks: list[Check]
    stats: NetworkStats  # per-layer statistics at initialisation
    subject: str = ""  # what was diagnosed (describe), so a report read alone says it

    @property
    def verdict(self) -> Status:
        return Verdict.of(self.checks).status

    @property
    def cause(self) -> str:
        """The most likely cause in plain words, or '' when healthy."""
        return Verdict.of(self.checks).cause

    @property
    def report(self) -> str:
        return health_report(self.checks)


def _compact(value: Any) -> str:
    """A knob's value as a flow-style YAML reader would type it: {type: conv, out: 8}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return str(value)


def _knobs(node: Any) -> str:
    """A config group's keys but `name`, set ones only: `lr=0.03 momentum=0.9`."""
    args = group_args(node)
    return " ".join(f"{k}={_compact(v)}" for k, v in args.items() if v is not None)


def describe(run: Run) -> str:
    """What the checks look at: the network, how it would train, and on which images.

    Without it a report read later, or a `make diagnose` with overrides, cannot be told
    apart from one of another config.
    """
    cfg, n = run.cfg, len(run.splits.y_train)
    probe = min(PROBE_IMAGES, n)
    params = sum(p.size for p in run.net.params.values())
    smoothing = cfg.trainer.label_smoothing
    lines = [
        ("model", f"{cfg.model.name} {_knobs(cfg.model)}".rstrip() + f" ({params:,} parameters)"),
        ("init", f"{cfg.init.name} {_knobs(cfg.init)}".rstrip()),
        ("optimiser", f"{cfg.optim.name} {_knobs(cfg.optim)}".rstrip()),
        ("batch size", str(cfg.trainer.batch_size)),
        ("data", f"{cfg.data.name}, {n:,} training images; the checks use the first "
                 f"{probe} ({min(GRADCHECK_IMAGES, probe)} for the gradient check, "
                 f"{min(OVERFIT_IMAGES, probe)} to memorise)"),
        ("loss", "cross-entropy" + (f", label smoothing {smoothing}" if smoothing else "")),
        ("seed", f"{cfg.trainer.seed} ({cfg.trainer.dtype})"),
    ]
    width = max(len(key) for key, _ in lines) + 1
    return "diagnosed:\n" + "\n".join(f"  {key + ':':<{width}} {text}" for key, text in lines)


def diagnose(run: Run) -> Diagnosis:
    """Run every health check on a built run's network and its first training images."""
    x = run.transform(run.splits.x_train[:PROBE_IMAGES])  # (N, H, W, C) float, not augmented
    y = run.splits.y_train[:PROBE_IMAGES]
    checks, stats = health_checks(
        run.net,
        run.loss_fn,
        lambda: make_optimizer_from(run.cfg.optim),
        x,
        y,
        run.splits.num_classes,
        gradcheck_images=GRADCHECK_IMAGES,
        overfit_images=OVERFIT_IMAGES,
    )
    return Diagnosis(checks, stats, describe(run))


def layer_table(stats: NetworkStats) -> str:
    """Per-layer statistics as a table: one row per layer, one column per statistic."""
    columns = ["act_mean", "act_std", "dead_frac", "grad_norm"]
    width = max([10, *(len(layer) + 2 for layer in stats.layers)])  # stage2.block1.conv1 ...
    rows = [f"{'layer':<{width}}" + "".join(f"{c:>12}" for c in columns)]
    for layer, values in stats.layers.items():
        cells = "".join(f"{'':>12}" if (v := getattr(values, c)) is None else f"{v:12.4g}"
                        for c in columns)
        rows.append(f"{layer:<{width}}{cells}")
    return "\n".join(rows)


def full_report(diagnosis: Diagnosis) -> str:
    """What was diagnosed, the verdict with every check, then the per-layer table."""
    return "\n\n".join([diagnosis.subject, diagnosis.report, layer_table(diagnosis.stats)]) + "\n"


def log_health(run: Run) -> None:
    """Diagnose the untrained network and log why it might fail (it trains a copy only)."""
    diagnosis = diagnose(run)
    mlflow.log_text(full_report(diagnosis), "health_report.txt")
    log_safely("the health tags", mlflow.set_tags,
               {tags.HEALTH: diagnosis.verdict, tags.HEALTH_CAUSE: diagnosis.cause or "-"})
    # The untrained network's per-layer statistics start the per-epoch series at step 0.
    mlflow.log_metrics(layer_metrics(diagnosis.stats.metrics()), step=0)
    log.info("%s", diagnosis.report.splitlines()[0])


def log_initial_statistics(run: Run) -> None:
    """The untrained network's per-layer statistics at step 0, as log_health logs them,
    for runs without health checks: gradient norms at initialisation (the depth study's
    gradient-flow figure) cost one forward and backward pass, the checks far more."""
    x = run.transform(run.splits.x_train[:PROBE_IMAGES])
    y = run.splits.y_train[:PROBE_IMAGES]
    with np.errstate(all="ignore"):
        stats = layer_statistics(run.net, run.loss_fn, x, y)
    mlflow.log_metrics(layer_metrics(stats.metrics()), step=0)


def layer_monitor(run: Run, buffer: OfflineBuffer | None = None) -> list[LayerMonitor]:
    """Per-layer statistics every epoch, logged as e.g. watch.conv1.act_std or
    watch.relu1.dead_frac (tracking.layer_metrics) at step=epoch, so a curve shows when
    activations explode or units die."""
    if not run.cfg.trainer.layer_stats:
        return []
    x = run.transform(run.splits.x_train[:PROBE_IMAGES])
    y = run.splits.y_train[:PROBE_IMAGES]
    return [LayerMonitor(run.net, run.loss_fn, x, y,
                         on_stats=lambda epoch, stats: _log_layer_stats(stats, epoch, buffer))]


def _log_layer_stats(stats: NetworkStats, epoch: int, buffer: OfflineBuffer | None) -> None:
    metrics = layer_metrics(stats.metrics())
    if buffer is not None:
        buffer.log_metrics(metrics, epoch)
    else:
        mlflow.log_metrics(metrics, step=epoch)


def sharpness_monitor(run: Run, buffer: OfflineBuffer | None = None,
                      start_epoch: int = 1) -> list[SharpnessMonitor]:
    """The sharpness every trainer.sharpness_every epochs (cnn.diagnostics.sharpness) on
    the first trainer.sharpness_images training images, in training batches of the run's
    size; a fresh run's untrained network is measured too, at step 0."""
    trainer = run.cfg.trainer
    if not trainer.sharpness_every:
        return []
    n = trainer.sharpness_images
    monitor = SharpnessMonitor(run.net, run.loss_fn, run.transform(run.splits.x_train[:n]),
                               run.splits.y_train[:n], run.optimizer, trainer.sharpness_every,
                               trainer.batch_size, seed=trainer.seed)
    if start_epoch == 1:
        initial = monitor.measure()
        if buffer is not None:
            buffer.log_metrics(initial, 0)
        else:
            mlflow.log_metrics(initial, step=0)
        log.info("sharpness at the start: %.4g (threshold %s)", initial["sharpness"],
                 f"{initial['sharpness_threshold']:.4g}" if "sharpness_threshold" in initial
                 else "none for this optimiser")
    return [monitor]
