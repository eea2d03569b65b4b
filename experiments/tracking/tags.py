"""Every tag name the harness writes or reads, defined once, and how values are spelled."""

from __future__ import annotations

GIT_COMMIT = "git_commit"
GIT_DIRTY = "git_dirty"  # "true" | "false" (see flag)
OVERRIDES = "hydra_overrides"
DATA_DIGEST = "data_digest"
SWEEP = "sweep"  # the sweep preset's name, "custom", or "none" outside a sweep
SWEEP_DIR = "sweep_dir"  # on a sweep's parent run: the multirun folder
SWEEP_JOBS = "jobs"  # on a sweep's parent run: "N runs: ..." once the sweep ended
KILLED_RUNS = "killed_runs"  # on a sweep's parent run: runs a dead worker left RUNNING
NO_RUN_JOBS = "jobs_without_run"  # on a sweep's parent run: jobs that failed before a run
RERUN_OF = "rerun_of"
RESUMED_FROM = "resumed_from_epoch"
FAILURE_REASON = "failure_reason"
FAILURE_EPOCH = "failure_epoch"
FAILURE_STEP = "failure_step"
ERROR_TYPE = "error_type"
HOST = "host"  # the machine and process training the run, for tracking.reap
PID = "pid"
HEALTH = "health"  # the diagnosis before training: pass | warn | fail
HEALTH_CAUSE = "health_cause"  # its most likely cause in plain words, "-" when healthy
CHUNK_THREADS = "chunk_threads"  # threads the layers took batch chunks on
# What the last bits of a run's numbers depend on (experiments.runtime.blas).
BLAS = "blas"  # NumPy's BLAS library and version, e.g. "openblas 0.3.31"
BLAS_KERNEL = "blas_kernel"  # the kernel it runs, e.g. "Haswell" (threadpoolctl's architecture)
BLAS_THREADS = "blas_threads"  # threads BLAS was on while the layers ran (1 by construction)
CPU = "cpu"  # the CPU's model name
MODEL_URI = "model_uri"
LR_FIND = "lr_find"  # "true" on the run of `make lr-find`
LR_FIND_SUGGESTION = "lr_find_suggestion"  # the range test's suggested rate (also a metric)
LR_FIND_STOPPED = "lr_find_stopped_early"  # "true" when the test's loss diverged before its end
SWEEPER = "sweeper"  # on a sweep's parent run: "grid" or "optuna" (a search)
JOB_NUM = "sweep_job"  # on a sweep's child run: its job (trial) number, from 0
# On a trial run of a search over replicates (search.seeds > 1): its seeds, "0 1 2"; its
# seed runs are its children (experiments.sweeps.trial).
TRIAL_SEEDS = "trial_seeds"
SWEPT = "swept"  # on a sweep's child run: JSON {key: value} of the keys the sweep varies
BEST_GROUP = "best_group"  # on a sweep's parent run: its seed group of best mean test_acc
SEED_GROUP = "seed_group"  # on a sweep's child run, once the sweep ended: its seed group
PARENT = "mlflow.parentRunId"  # set by MLflow (start_run(parent_run_id=...))
NOTE = "mlflow.note.content"  # the description MLflow's UI shows
# On an experiment: which of its modes MLflow 3's UI opens it in. Untagged, the UI may open
# a model-training experiment in its GenAI mode (an overview of traces) instead of its runs.
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the value for training runs, as here


def flag(value: bool) -> str:
    """A boolean as every boolean tag spells it: "true" or "false"."""
    return "true" if value else "false"
