"""A search trial over replicates (`sweep=search search.seeds=3`): one MLflow run for the
trial, a child of the sweep's parent, and below it one run per seed.

Hydra's Optuna sweeper scores a trial by what its job returns, one number. With
search.seeds = k > 1 the job trains the trial's configuration k times, at trainer.seed,
trainer.seed + 1, ..., trainer.seed + k - 1: the same seeds in every trial, so that trials
differ only in what the search draws and can be compared paired by seed
(experiments.reporting.compare). The objective is the mean test accuracy over those
seeds, a seed that diverged counting as 0.0, the worst outcome (as a diverged trial scores
0.0 with one seed, experiments.sweeps.job).

The trial run (tags.TRIAL_SEEDS names its seeds) holds the trial's params but
trainer.seed, which its seed runs hold, and as metrics `test_acc_mean` (the objective),
`test_acc_sd` and `test_acc_ci95` (half-width of the 95% Student-t interval) over the
seeds, `seeds` and `seeds_diverged`. It ends as its seeds do: KILLED when a stop ended a
seed run KILLED, FAILED when a seed failed with an error other than a divergence (the
seeds after it are not trained), else FINISHED.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from omegaconf import DictConfig, OmegaConf, read_write

from cnn.training import DivergenceError
from experiments.config import validate
from experiments.reporting.groups import describe
from experiments.runs.tracked import SweptValues, default_run_name, train_and_log
from experiments.tracking import swept as swept_names
from experiments.tracking import tags
from experiments.tracking.git import git_state, git_tags
from experiments.tracking.lifecycle import ended_run
from experiments.tracking.params import flatten
from experiments.tracking.store import check_store_writable, resolve_tracking_uri, use_store

log = logging.getLogger(__name__)


def replicate_seeds(cfg: Any) -> list[int]:
    """The seeds each trial trains: trainer.seed + 0 .. search.seeds - 1."""
    return [cfg.trainer.seed + i for i in range(cfg.search.seeds)]


def seeds_problem(seeds: int, sweeper: str | None, swept: Sequence[str] = ()) -> str | None:
    """Why search.seeds cannot be used as given, or None. `sweeper`: "optuna" in a search,
    "grid" in another sweep, None for a single run; `swept`: the keys the sweep varies."""
    if seeds <= 1:
        return None
    if sweeper != "optuna":
        where = "a single run trains one seed" if sweeper is None else (
            "a grid sweep trains one seed per run")
        return (f"search.seeds={seeds} is for a search (sweep=search, as a multirun); "
                f"{where}: list the seeds instead, e.g. -m trainer.seed=0,1,2")
    if swept_names.SEED_KEY in swept:
        return (f"search.seeds={seeds} trains every trial at the same seeds from "
                f"trainer.seed; the search cannot also vary {swept_names.SEED_KEY}")
    return None


def trial_name(cfg: Any, seeds: Sequence[int], swept: SweptValues | None) -> str:
    """Its seed runs' name with all their seeds: seed-he-lr0.01-n1000-s0..2-batch_size=64."""
    if cfg.tracking.run_name:
        return f"{cfg.tracking.run_name}-s{seeds[0]}..{seeds[-1]}"
    bare = default_run_name(cfg)  # ends in -s<trainer.seed>
    name = bare[:bare.rindex("-s")] + f"-s{seeds[0]}..{seeds[-1]}"
    return name if swept is None else name + swept_names.name_suffix(swept.mine, swept.all)


def run_trial(cfg: DictConfig, *, parent_run_id: str | None, extra_tags: Mapping[str, str],
              swept: SweptValues | None, hydra_dir: Path | None = None,
              log_file: Path | None = None) -> float:
    """Train the trial's seeds under a trial run; return their mean test accuracy (a
    diverged seed counts 0.0). Errors other than a divergence, and stops, propagate once
    the trial run has ended FAILED or KILLED."""
    seeds = replicate_seeds(cfg)
    # Before the trial run exists: a drawn value the runs cannot use leaves no run behind.
    validate(cfg)
    check_store_writable(resolve_tracking_uri(cfg.tracking.uri))
    experiment_id = use_store(cfg.tracking.uri, cfg.tracking.experiment)
    client = mlflow.MlflowClient()
    commit, dirty, _ = git_state()
    run_tags = {**git_tags(commit, dirty), tags.SWEEP: "none", **extra_tags,
                tags.TRIAL_SEEDS: " ".join(map(str, seeds)),
                tags.HOST: socket.gethostname(), tags.PID: str(os.getpid()),
                tags.NOTE: f"A search trial: the mean over seeds {seeds[0]}..{seeds[-1]}, "
                           "whose runs are nested below (a diverged seed counts as 0)."}
    if parent_run_id is not None:
        run_tags[tags.PARENT] = parent_run_id
    if swept is not None:
        run_tags[tags.SWEPT] = swept_names.encode(swept.mine)
    trial = client.create_run(experiment_id, run_name=trial_name(cfg, seeds, swept),
                              tags=run_tags)
    trial_id = trial.info.run_id
    with ended_run(trial_id, active=False):
        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        params.pop(swept_names.SEED_KEY, None)  # each seed run's own
        client.log_batch(trial_id, params=[Param(k, str(v)) for k, v in params.items()])
        accuracies, diverged = [], 0
        for seed in seeds:
            accuracy = _train_seed(cfg, seed, trial_id, extra_tags, swept, hydra_dir, log_file)
            diverged += accuracy is None
            accuracies.append(0.0 if accuracy is None else accuracy)
        # The interval's t quantile loads scipy, which Optuna has already imported in the
        # process running the basic launcher's jobs; a parallel worker loads its OpenBLAS
        # after its first trial, which the runs' BLAS threads and tag allow for
        # (runtime.threads limits every BLAS, runtime.blas names NumPy's).
        stats = describe(accuracies)
        values = {"test_acc_mean": stats.mean, "test_acc_sd": stats.sd,
                  "test_acc_ci95": stats.ci95, "seeds": float(len(seeds)),
                  "seeds_diverged": float(diverged)}
        now = int(time.time() * 1000)
        client.log_batch(trial_id, metrics=[Metric(k, v, now, 0) for k, v in values.items()])
    log.info("trial %s: test accuracy %.4f ± %.4f (mean ± 95%% CI over seeds %s)",
             trial_id, stats.mean, stats.ci95, " ".join(map(str, seeds)))
    return stats.mean


def _train_seed(cfg: DictConfig, seed: int, trial_id: str, extra_tags: Mapping[str, str],
                swept: SweptValues | None, hydra_dir: Path | None,
                log_file: Path | None) -> float | None:
    """One seed's run under the trial run: its test accuracy, None if it diverged."""
    seed_cfg = copy.deepcopy(cfg)
    with read_write(seed_cfg):
        seed_cfg.trainer.seed = seed
    try:
        outcome = train_and_log(seed_cfg, extra_tags=extra_tags, parent_run_id=trial_id,
                                swept=swept, hydra_dir=hydra_dir, log_file=log_file)
    except DivergenceError as e:
        # The seed run is FAILED with its reason; the trial goes on with the other seeds.
        log.warning("seed %d diverged (%s); it counts as 0.0 in the trial's mean", seed,
                    e.reason)
        return None
    return float(outcome.test_acc)
