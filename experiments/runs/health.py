"""Health checks of a configured run, before any training: why would it fail?

    python -m experiments.diagnose experiment=seed_subset
    python -m experiments.diagnose init=unit_normal optim.lr=0.5
    make diagnose ARGS="model=vgg init=normal"

Takes the same overrides as `python -m experiments.train`, builds the same
network and data, and prints a health report (see cnn.diagnostics): the loss
at initialisation against ln(K), a float64 gradient check of the actual
network on real images, per-layer activation statistics, dead ReLUs, the
update-to-weight ratio of a first step, and whether the network can memorise
20 images. Every training run runs the same checks first and logs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from omegaconf import DictConfig

from cnn.diagnostics import Check, health_checks, health_report, verdict
from experiments.allocator import keep_freed_memory
from experiments.config import register_configs
from experiments.pipeline import Run, build_run, make_optimizer_from

PROBE_IMAGES = 128


@dataclass
class Diagnosis:
    checks: list[Check]
    stats: dict[str, float]  # per-layer statistics at initialisation, e.g. "conv1.act_std"
    report: str
    verdict: str  # pass | warn | fail

    @property
    def cause(self) -> str:
        """The most likely cause in plain words, or '' when healthy."""
        first, _, rest = self.report.splitlines()[0].partition(" - most likely: ")
        return rest


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
    )
    return Diagnosis(checks, stats, health_report(checks), verdict(checks))


def layer_table(stats: dict[str, float]) -> str:
    """Per-layer statistics as a table: one row per layer, one column per statistic."""
    columns = ["act_mean", "act_std", "dead_frac", "grad_norm"]
    layers: dict[str, dict[str, float]] = {}
    for key, value in stats.items():
        layer, _, stat = key.rpartition(".")
        if stat in columns:
            layers.setdefault(layer, {})[stat] = value
    rows = [f"{'layer':<10}" + "".join(f"{c:>12}" for c in columns)]
    for layer, values in layers.items():
        cells = "".join(f"{values[c]:12.4g}" if c in values else f"{'':>12}" for c in columns)
        rows.append(f"{layer:<10}{cells}")
    return "\n".join(rows)


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _app(cfg: DictConfig) -> None:
    keep_freed_memory()
    diagnosis = diagnose(build_run(cfg))
    print(layer_table(diagnosis.stats))
    print()
    print(diagnosis.report)


def main() -> None:
    """Entry point of `python -m experiments.diagnose` (and `make diagnose`)."""
    register_configs()
    _app()


if __name__ == "__main__":
    main()
