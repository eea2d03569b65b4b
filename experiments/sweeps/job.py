"""One job of `python -m experiments.train`: a single run, or one run of a sweep.

In a sweep the job finds its parent run (experiments.sweeps.parent) and is tagged with
the sweep's name; a job that fails or diverges is recorded as FAILED and the sweep goes on.
A search's trial with search.seeds > 1 trains its seeds under a trial run of its own
(experiments.sweeps.trial).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnn.training import DivergenceError
from experiments.config.validate import ConfigError
from experiments.runs.tracked import SweptValues, train_and_log
from experiments.sweeps.parent import read_parent_run
from experiments.sweeps.plan import sweeper_kind
from experiments.sweeps.trial import run_trial, seeds_problem
from experiments.tracking import tags

log = logging.getLogger(__name__)


def run_job(cfg: DictConfig, hydra: Any) -> float | None:
    """Train the job's run; return its test accuracy, the objective a search maximises.

    A failed job in a grid sweep returns None. In a search (hydra/sweeper=optuna) it
    returns 0.0: a trial that diverged is the worst outcome, and scoring it so (rather
    than letting Optuna drop it as failed) steers the sampler away from its region.
    With search.seeds > 1 a search's job is a trial of that many seeds, and returns their
    mean test accuracy (experiments.sweeps.trial).
    `hydra` is the job's HydraConfig (hydra.core.hydra_config.HydraConfig.get()).
    """
    output_dir = Path(hydra.runtime.output_dir)
    multirun = hydra.mode == RunMode.MULTIRUN
    search = multirun and sweeper_kind(hydra) == "optuna"
    parent = read_parent_run(hydra.sweep.dir) if multirun else None
    extra = {tags.OVERRIDES: " ".join(hydra.overrides.task)}
    swept = None if parent is None else job_values(hydra.overrides.task, parent.get("swept", {}))
    if multirun:
        extra[tags.JOB_NUM] = str(hydra.job.num)
    failed = 0.0 if search else None
    if parent is not None:
        extra[tags.SWEEP] = parent["sweep"]
    elif multirun:
        extra[tags.SWEEP] = hydra.runtime.choices.get("sweep") or "custom"
    # A job of hydra/launcher=slurm is a SLURM job of its own: SIGTERM or SIGUSR2 there come
    # from the scheduler (scancel, time limit, preemption) and stop this job, not the sweep.
    # Elsewhere the stop propagates to the sweep, which stops (its parent ends KILLED).
    slurm_job = multirun and "SlurmLauncher" in str(OmegaConf.select(hydra, "launcher._target_"))
    where = {"parent_run_id": None if parent is None else parent["run_id"], "swept": swept,
             "hydra_dir": output_dir / hydra.output_subdir if hydra.output_subdir else None,
             "log_file": output_dir / f"{hydra.job.name}.log"}
    try:
        # A sweep's callback refuses the preset's value before its parent run; this is for a
        # single run, and for a value a grid sweep lists.
        problem = seeds_problem(cfg.search.seeds, ("optuna" if search else "grid")
                                if multirun else None)
        if problem is not None:
            raise ConfigError(problem)
        if search and cfg.search.seeds > 1:
            return run_trial(cfg, extra_tags=extra, **where)
        outcome = train_and_log(cfg, extra_tags=extra, **where)
    except KeyboardInterrupt as e:
        if not slurm_job:
            raise
        # Its run is already KILLED, and the parent is the sweep's. Returning lets submitit
        # record the job as done, so the sweep collects the other jobs and writes its report.
        log.warning("SLURM stopped this job (%s); its run is KILLED, the sweep goes on", e)
        return failed
    except Exception as e:
        if not multirun:
            raise
        # In a sweep one failed or diverged job must not stop the others, nor the report
        # at the end; the run is already recorded as FAILED with its reason.
        if isinstance(e, DivergenceError):
            log.warning("this job diverged (%s); the sweep goes on", e.reason)
        else:
            log.exception("this job failed; the sweep goes on")
        return failed
    return outcome.test_acc


def job_values(overrides: Sequence[str], swept: Mapping[str, Sequence[str]]
               ) -> SweptValues:
    """This job's value of each key the sweep varies, as its override gives it, with all
    the values of each (which decide what the run's name must show)."""
    mine: dict[str, str] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if sep and key in swept:
            mine[key] = value
    return SweptValues(mine, {k: list(v) for k, v in swept.items()})
