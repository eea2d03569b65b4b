"""Train one network from a Hydra config and record everything about it in MLflow.

    python -m experiments.train                                   # defaults (conf/train.yaml)
    python -m experiments.train model=vgg init=xavier optim.lr=0.05 data.n_train=2500
    python -m experiments.train experiment=seed_subset            # a fixed recipe
    python -m experiments.train sweep=convergence                 # a multirun (make sweep)
    python -m experiments.train --help                            # groups and options

Each job runs experiments.sweeps.job.run_job, which trains inside an MLflow run
(experiments.runs.tracked.train_and_log).
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import register_configs
from experiments.sweeps.job import run_job
from experiments.tracking.disk import DiskFullError
from experiments.tracking.lifecycle import http_retries_bounded
from experiments.tracking.signals import stop_scope
from experiments.tracking.store import StoreError, StoreNotWritableError


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _app(cfg: DictConfig) -> float | None:
    try:
        return run_job(cfg, HydraConfig.get())
    except (StoreError, StoreNotWritableError, DiskFullError) as e:
        # The message says it all: no traceback. A store is refused before any run exists
        # (by a sweep, before its first job: experiments.sweeps.tracking); a full disk
        # ends the run FAILED with this message first.
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1 if isinstance(e, DiskFullError) else 2)


def main() -> None:
    """Entry point of `python -m experiments.train` (and `make train`, `make sweep`)."""
    # MLflow's per-artifact download bars would interleave with the training bar.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    http_retries_bounded()
    register_configs()
    # A stop signal anywhere in the command, a sweep's jobs in this process included, ends
    # what it stopped (experiments.tracking.signals); on the way out a sweep's parent too.
    with stop_scope():
        _app()


if __name__ == "__main__":
    main()
