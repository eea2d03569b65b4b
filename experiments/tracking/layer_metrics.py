"""The names per-layer statistics are logged under: "watch.<layer>.<statistic>", e.g.
watch.conv1.act_std, watch.relu1.dead_frac, watch.stage2.block1.conv1.grad_norm.

Why the prefix: MLflow 3's UI draws a run's charts sorted by metric name, and puts the
charts of any "<section>/" prefix in a section above the run's own metrics. A name that
sorts after the main curves (train_*, val_*, test_*) keeps those first on a run's page;
"watch" says where the numbers come from (cnn.diagnostics.LayerMonitor watches every layer).
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "watch."


def layer_metric(layer: str, statistic: str) -> str:
    """The metric name of one layer's statistic."""
    return f"{PREFIX}{layer}.{statistic}"


def layer_metrics(flat: Mapping[str, float]) -> dict[str, float]:
    """cnn.diagnostics' flat "<layer>.<statistic>" values under their logged names."""
    return {PREFIX + key: value for key, value in flat.items()}


def layer_of(key: str, statistic: str) -> str | None:
    """The layer of a logged per-layer metric of `statistic`, None for any other metric."""
    suffix = "." + statistic
    if not (key.startswith(PREFIX) and key.endswith(suffix)):
        return None
    return key[len(PREFIX):-len(suffix)]
