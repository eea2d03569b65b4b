"""Run a logged run again from its own config and compare the two.

    python -m experiments.rerun <run_id>          # or: make rerun RUN_ID=<run_id>

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

import argparse
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from omegaconf import DictConfig, OmegaConf

from cnn.rng import make_generators
from cnn.training import DivergenceError
from experiments import tracking
from experiments.config import config_from_container
from experiments.pipeline import load_splits
from experiments.train import train_and_log

log = logging.getLogger("experiments.rerun")

# Metrics that depend only on the config, code and data; timings depend on the machine.
DETERMINISTIC = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "test_loss", "test_acc")


def load_logged_config(run_id: str) -> DictConfig:
    """The resolved config a run logged, typed and validated again."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="config/config.yaml", dst_path=tmp)
        container = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return config_from_container(container)


def _logged_diff(run_id: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="git_diff.patch", dst_path=tmp)
        except Exception:
            return ""
        return Path(path).read_text()


def provenance_warnings(run_id: str, tags: dict[str, str], data_digest: str) -> list[str]:
    """What differs between the logged run and now: code commit, local changes, data."""
    commit, dirty, diff = tracking.git_state()
    warnings = []
    old_commit = tags.get(tracking.TAG_GIT_COMMIT, "unknown")
    if old_commit != commit:
        warnings.append(f"code differs: the run used commit {old_commit}, this is {commit}")
    old_dirty = tags.get(tracking.TAG_GIT_DIRTY) == "true"
    if (old_dirty or dirty) and _logged_diff(run_id) != (diff if dirty else ""):
        warnings.append("uncommitted changes differ from the run's (see its git_diff.patch)")
    old_digest = tags.get(tracking.TAG_DATA_DIGEST)
    if old_digest != data_digest:
        warnings.append(f"data differs: the run used digest {old_digest}, now {data_digest}")
    return warnings


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


def metric_series(run_id: str, key: str) -> list[float]:
    """A metric's values in step order."""
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]


def compare_runs(old_id: str, new_id: str) -> list[SeriesComparison]:
    """Every deterministic metric's series in the two runs, side by side."""
    client = mlflow.MlflowClient()
    keys = set(client.get_run(old_id).data.metrics) | set(client.get_run(new_id).data.metrics)
    return [SeriesComparison(k, metric_series(old_id, k), metric_series(new_id, k))
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


def rerun(run_id: str, tracking_uri: str | None = None) -> tuple[str, list[SeriesComparison]]:
    """Run `run_id` again in the same store; return the new run id and the comparison."""
    mlflow.set_tracking_uri(tracking.resolve_tracking_uri(tracking_uri))
    client = mlflow.MlflowClient()
    old = client.get_run(run_id)
    cfg = load_logged_config(run_id)
    # Log next to the original. Usually the logged config already leads there; it is
    # changed only if not, so that the two runs' params stay comparable.
    if tracking.resolve_tracking_uri(cfg.tracking.uri) != mlflow.get_tracking_uri():
        cfg.tracking.uri = mlflow.get_tracking_uri()
    cfg.tracking.experiment = client.get_experiment(old.info.experiment_id).name

    splits = load_splits(cfg, make_generators(cfg.trainer.seed))
    for warning in provenance_warnings(run_id, old.data.tags, splits.digest()):
        log.warning("%s: the metrics may not match", warning)

    with tempfile.TemporaryDirectory() as tmp:
        hydra_dir = None
        try:  # the original composition, for reference (the rerun itself uses no Hydra)
            hydra_dir = Path(mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="config/hydra", dst_path=tmp))
        except Exception:
            log.info("the run has no config/hydra artifacts")
        tags = {tracking.TAG_RERUN_OF: run_id,
                tracking.TAG_OVERRIDES: old.data.tags.get(tracking.TAG_OVERRIDES, "")}
        name = f"{old.info.run_name or run_id[:8]}-rerun"
        try:
            outcome = train_and_log(cfg, run_name=name, tags=tags, hydra_dir=hydra_dir,
                                    splits=splits)
            new_id = outcome.run_id
        except DivergenceError as e:
            # Diverging again is a faithful rerun of a diverged run; compare all the same.
            log.warning("the rerun diverged too: %s", e.reason)
            new_id = mlflow.last_active_run().info.run_id
    return new_id, compare_runs(run_id, new_id)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the MLflow run to reproduce")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    new_id, comparisons = rerun(args.run_id, args.tracking_uri)
    print(f"\nrerun of {args.run_id}: new run {new_id}")
    print(format_comparison(comparisons, args.run_id, new_id))
    if not all(c.identical for c in comparisons):
        print("\nsome series differ; see the warnings above for why", file=sys.stderr)


if __name__ == "__main__":
    main()
