"""What a sweep needs when its jobs run in other processes (hydra/launcher=parallel,
slurm_local, slurm). experiments.sweeps.tracking calls these.

    launcher_kind(config)        "basic", "joblib", "submitit_local" or "submitit_slurm"
    blas_threads(config)         threads per job so the jobs do not oversubscribe the cores
    JobEnvironment               sets the variables the jobs inherit, restores them after
    log_job_threads()            in a job: which BLAS thread limits it runs with
"""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def launcher_kind(config: DictConfig) -> str:
    """Which launcher runs the sweep, from hydra.launcher._target_."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    if "JoblibLauncher" in target:
        return "joblib"
    if "submitit" in target:
        return "submitit_slurm" if "SlurmLauncher" in target else "submitit_local"
    return "basic"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def blas_threads(config: DictConfig, override: int | None = None) -> int | None:
    """BLAS threads for each job of a sweep launched in other processes (None: leave as is).

    joblib: cores // n_jobs (n_jobs <= 0 counts back from the cores, as in joblib);
    submitit: cpus_per_task when set. `override` wins.
    """
    kind = launcher_kind(config)
    if kind == "basic":
        return None
    if override:
        return int(override)
    if kind == "joblib":
        n_jobs = int(OmegaConf.select(config, "hydra.launcher.n_jobs") or 1)
        if n_jobs <= 0:
            n_jobs = max(1, cpu_count() + 1 + n_jobs)
        return max(1, cpu_count() // n_jobs)
    cpus = OmegaConf.select(config, "hydra.launcher.cpus_per_task")
    return int(cpus) if cpus else None


class JobEnvironment:
    """Environment variables set in the sweep's process before launch, so that the job
    processes it starts inherit them (before they import NumPy); `restore` undoes them."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def log_job_threads() -> None:
    """In a job: say which BLAS thread limits it runs with (in its log file)."""
    values = {name: os.environ[name] for name in THREAD_VARS if name in os.environ}
    if values:
        log.info("BLAS threads in this job (pid %d): %s", os.getpid(),
                 " ".join(f"{k}={v}" for k, v in values.items()))
