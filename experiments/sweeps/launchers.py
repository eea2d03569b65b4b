"""What a sweep needs when its jobs run in other processes (hydra/launcher=parallel,
slurm_local, slurm): BLAS threads per job, where the jobs log, and runs left RUNNING by a
worker that died. experiments.callbacks.SweepTracking calls these.

    launcher_kind(config)        "basic", "joblib", "submitit_local" or "submitit_slurm"
    blas_threads(config)         threads per job so the jobs do not oversubscribe the cores
    JobEnvironment               sets the variables the jobs inherit, restores them after
    end_orphaned_runs(...)       marks a sweep's runs still RUNNING as KILLED
    KillJob                      fault injection for tests: one job SIGKILLs itself
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from hydra.experimental.callback import Callback
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


def end_orphaned_runs(client: Any, parent_run_id: str, reason: str) -> list[str]:
    """End every child of the sweep still RUNNING as KILLED, tagged with `reason`.

    Called from the sweep's process once no job can still be running: a worker that was
    killed (SIGKILL, out of memory) cannot end its own run. Returns their names.
    """
    from experiments import tracking

    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}' "
                      "and attributes.status = 'RUNNING'")
    names = []
    for run in runs:
        client.set_tag(run.info.run_id, tracking.TAG_FAILURE_REASON, reason)
        client.set_tag(run.info.run_id, tracking.TAG_ERROR_TYPE, "WorkerDied")
        client.set_terminated(run.info.run_id, status="KILLED")
        names.append(run.info.run_name)
    return names


class KillJob(Callback):
    """Fault injection for tests: job number `job` SIGKILLs its own process after logging
    epoch `after_epoch`, as the out-of-memory killer would. Add it on the command line:

        +hydra.callbacks.kill._target_=experiments.parallel.KillJob +hydra.callbacks.kill.job=2
    """

    def __init__(self, job: int, after_epoch: int = 1) -> None:
        self.job, self.after_epoch = int(job), int(after_epoch)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.job.num") != self.job:
            return
        from experiments.callbacks import MetricsLogger

        original = MetricsLogger.on_epoch_end
        after = self.after_epoch

        def on_epoch_end(logger: MetricsLogger, epoch: int, metrics: dict[str, float]) -> None:
            original(logger, epoch, metrics)
            if epoch >= after:
                log.warning("KillJob: job %d kills itself (SIGKILL) after epoch %d",
                            config.hydra.job.num, epoch)
                logging.shutdown()
                os.kill(os.getpid(), signal.SIGKILL)

        MetricsLogger.on_epoch_end = on_epoch_end  # this job's process only
