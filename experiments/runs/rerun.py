"""Run a logged run again from its own config and compare the two.

The config is rebuilt from the run's logged resolved config (config/config.yaml), not
from its flattened params, and checked against the schemas. Before training, it warns
if the code (git commit, uncommitted changes) or the data (digest of the images and
labels) differs from what the run logged. The new run is tagged rerun_of=<run_id>.
At the end it prints the old and new final metrics side by side and says whether each
per-epoch series is identical. On the same machine with unchanged code and data they
are: every random draw comes from generators seeded by the config. Only the timing
metrics (epoch_time_s, images_per_s) differ.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow

from cnn.rng import make_generators
from cnn.training import DivergenceError
from experiments.datasets.base import load_splits
from experiments.runs.logged import load_logged_config, provenance_warnings
from experiments.runs.tracked import train_and_log
from experiments.tracking import tags
from experiments.tracking.history import metric_series
from experiments.tracking.store import connect, resolve_tracking_uri

log = logging.getLogger(__name__)

# Metrics that depend only on the config, code and data; timings depend on the machine.
DETERMINISTIC = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "test_loss", "test_acc")


@dataclass
class SeriesComparison:
    metric: str
    old: list[float]
    new: list[float]

    @property
    def identical(self) -> bool:
        return len(self.old) == len(self.new) and all(
            a == b or (math.isnan(a) and math.isnan(b))
            for a, b in zip(self.old, self.new, strict=True))


def compare_runs(old_id: str, new_id: str) -> list[SeriesComparison]:
    """Every deterministic metric's series in the two runs, side by side."""
    client = mlflow.MlflowClient()
    keys = set(client.get_run(old_id).data.metrics) | set(client.get_run(new_id).data.metrics)
    return [SeriesComparison(k, metric_series(client, old_id, k), metric_series(client, new_id, k))
            for k in DETERMINISTIC if k in keys]


def format_comparison(comparisons: Sequence[SeriesComparison], old_id: str, new_id: str) -> str:
    def last(values: list[float]) -> str:
        return f"{values[-1]:.6g}" if values else "-"

    rows = [("metric", f"old {old_id[:8]}", f"new {new_id[:8]}", "per-epoch series")]
    for c in comparisons:
        rows.append((c.metric, last(c.old), last(c.new),
                     "identical" if c.identical else f"DIFFERENT ({len(c.old)} vs "
                                                     f"{len(c.new)} values)"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
                     for r in rows)


class RerunError(RuntimeError):
    """The run cannot be rerun; the message says why, in one line."""


def rerun(run_id: str, tracking_uri: str | None = None) -> tuple[str, list[SeriesComparison]]:
    """Run `run_id` again in the same store; return the new run id and the comparison.
    RerunError if there is no such run."""
    connect(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        old = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        raise RerunError(f"no run {run_id} in {mlflow.get_tracking_uri()}") from e
    if old.info.lifecycle_stage == "deleted":
        log.warning("run %s is deleted (in the store's trash); rerunning it all the same, as "
                    "a new run that is not deleted", run_id)
    cfg = load_logged_config(run_id)
    # Log next to the original. Usually the logged config already leads there; it is
    # changed only if not, so that the two runs' params stay comparable.
    if resolve_tracking_uri(cfg.tracking.uri) != mlflow.get_tracking_uri():
        cfg.tracking.uri = mlflow.get_tracking_uri()
    cfg.tracking.experiment = client.get_experiment(old.info.experiment_id).name

    splits = load_splits(cfg, make_generators(cfg.trainer.seed))
    for warning in provenance_warnings(run_id, old.data.tags, splits.digest(), new_run=True):
        log.warning("%s: the metrics may not match", warning)

    with tempfile.TemporaryDirectory() as tmp:
        hydra_dir = None
        try:  # the original composition, for reference (the rerun itself uses no Hydra)
            hydra_dir = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config/hydra", dst_path=tmp))
        except Exception:
            log.info("the run has no config/hydra artifacts")
        extra = {tags.RERUN_OF: run_id, tags.OVERRIDES: old.data.tags.get(tags.OVERRIDES, "")}
        name = f"{old.info.run_name or run_id[:8]}-rerun"
        try:
            outcome = train_and_log(cfg, run_name=name, extra_tags=extra, hydra_dir=hydra_dir,
                                    splits=splits)
            new_id = outcome.run_id
        except DivergenceError as e:
            # Diverging again is a faithful rerun of a diverged run; compare all the same.
            log.warning("the rerun diverged too: %s", e.reason)
            new_id = mlflow.last_active_run().info.run_id
    return new_id, compare_runs(run_id, new_id)
