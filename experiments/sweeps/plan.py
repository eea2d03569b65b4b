"""Whether a sweep gains from parallel jobs on this machine (`make sweep-parallel`).

Parallel jobs on one machine share the cores a sequential sweep already uses: a run's
convolutions, ReLUs, pools and batch norms take batch chunks on as many threads as BLAS
has (experiments.runtime.threads), so one job at a time keeps every core busy in the
layers, and two jobs at a time only overlap what runs on one thread (Python between the
layers, batches being made, evaluation, logging). Against that gain they pay a fixed
cost: a local MLflow server (SQLite takes one writer) and worker processes that import
NumPy, Hydra and MLflow before their first job. Measured on 2 cores (README, *Sweeps in
parallel*), 8 jobs of 10 epochs ran 1.13x faster on 2 workers, and 4 jobs of 5 epochs
1.45x slower. `decline_reason` says when not to try.
`swept_keys` says which keys a sweep varies, for its runs' names and its report;
`invalid_jobs` which of a grid's jobs its config refuses, before the sweep starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.sweeps.launchers import cpu_count

# Jobs each worker should get so that the fixed cost is paid back: 2 per worker (4 jobs
# on 2 workers) was slower than one at a time, 4 per worker (8 on 2) faster.
MIN_JOBS_PER_WORKER = 4


def decline_reason(jobs: int, workers: int, cores: int) -> str | None:
    """Why `jobs` sweep jobs on `workers` parallel workers and `cores` cores would not be
    faster than one after the other, in one line; None when they may be."""
    if workers < 2:
        return f"JOBS={workers} runs one job at a time anyway"
    if cores < 2:
        return "this machine has one core, which parallel jobs would only take turns on"
    if workers > cores:
        return (f"JOBS={workers} is more than the {cores} cores; each job would get a "
                f"fraction of one (try JOBS={cores})")
    if jobs < MIN_JOBS_PER_WORKER * workers:
        return (f"{jobs} job(s) on {workers} workers: starting the workers and a local "
                "tracking server costs more than running jobs side by side gains (parallel "
                f"pays from {MIN_JOBS_PER_WORKER * workers} jobs on {workers} workers); one "
                "job's layers already use every core")
    return None


def sweeper_kind(hydra: Any) -> str:
    """"optuna" for a search (hydra/sweeper=optuna), "grid" for Hydra's basic sweeper.

    `hydra`: the config's `hydra` node, or a job's HydraConfig."""
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(hydra, "sweeper._target_") or "")
    return "optuna" if "optuna" in target.lower() else "grid"


def count_jobs(overrides: Sequence[str]) -> int:
    """The number of jobs `python -m experiments.train <overrides>` runs as a sweep: the
    product of the value counts of its sweep parameters (a preset's `hydra.sweeper.params`
    and lists on the command line, the latter winning), 1 for a single run; for a search,
    its trial budget (`hydra.sweeper.n_trials`)."""
    return _jobs_and_sweeper(overrides)[0]


def _jobs_and_sweeper(overrides: Sequence[str]) -> tuple[int, str]:
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from experiments.config import register_configs

    parser = OverridesParser.create()
    given = parser.parse_overrides(list(overrides))
    plain = [o.input_line for o in given if not o.is_sweep_override()]
    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose("train", overrides=plain, return_hydra_config=True)
    kind = sweeper_kind(cfg.hydra)
    if kind == "optuna":  # its values are drawn, not listed: the budget counts
        return int(cfg.hydra.sweeper.n_trials), kind
    params = dict(cfg.hydra.sweeper.params or {})
    counts = {key: len(list(o.sweep_string_iterator()))
              for key, value in params.items()
              for o in parser.parse_overrides([f"{key}={value}"])}
    for o in given:
        if o.is_sweep_override():
            counts[o.key_or_group] = len(list(o.sweep_string_iterator()))
        else:
            counts.pop(o.key_or_group, None)  # a single value replaces a preset's list
    return math.prod(counts.values()), kind


def swept_keys(overrides: Sequence[str], params: Mapping[str, Any]) -> dict[str, list[str]]:
    """The keys a sweep varies, each with its listed values ([] when a search draws them):
    a preset's `hydra.sweeper.params` and lists on the command line, the latter winning, as
    in count_jobs; a key given one value on the command line is not swept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()

    def values(override: Any) -> list[str]:
        try:
            return [str(v) for v in override.sweep_string_iterator()]
        except Exception:  # an interval or a tagged distribution (Optuna): drawn, not listed
            return []

    swept: dict[str, list[str]] = {}
    for key, value in params.items():
        try:
            parsed = parser.parse_overrides([f"{key}={value}"])[0]
        except Exception:  # the sweeper's own syntax: still a key it varies
            swept[key] = []
            continue
        if parsed.is_sweep_override():
            swept[key] = values(parsed)
    for o in parser.parse_overrides(list(overrides)):
        if o.is_sweep_override():
            swept[o.key_or_group] = values(o)
        else:
            swept.pop(o.key_or_group, None)
    return swept


def grid_jobs(overrides: Sequence[str], params: Mapping[str, Any]) -> list[list[str]]:
    """Each job's overrides in a grid sweep, in Hydra's order: its basic sweeper's own
    product of the preset's `hydra.sweeper.params` and the command line's lists."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [f"{key}={value}" for key, value in params.items()] + list(overrides)
    parsed = OverridesParser.create().parse_overrides(given)
    return [list(job) for job in BasicSweeper.split_arguments(parsed, None)[0]]


def invalid_jobs(config_name: str, jobs: Sequence[Sequence[str]]) -> list[str]:
    """For each job whose config cannot be composed or is refused by validation (the
    checks a job makes before its run), a line naming the job, its overrides and why.
    Needs Hydra initialised, as it is in a running app."""
    from hydra import compose

    from experiments.config import validate

    shared = set.intersection(*(set(job) for job in jobs)) if len(jobs) > 1 else set()
    refused = []
    for num, job in enumerate(jobs):
        try:
            validate(compose(config_name, overrides=list(job)))
        except Exception as e:
            own = " ".join(o for o in job if o not in shared)  # what sets it apart
            refused.append(f"job {num} ({own}): {type(e).__name__}: {e}")
    return refused


def check_grid_jobs(config: Any) -> None:
    """ValueError listing every job of a grid sweep that is invalid (`config`: the sweep's
    composed config, with its `hydra` node); a search's trials are drawn, each checks its
    own."""
    from omegaconf import OmegaConf

    if sweeper_kind(config.hydra) != "grid":
        return
    params = OmegaConf.select(config, "hydra.sweeper.params")
    jobs = grid_jobs(list(config.hydra.overrides.task),
                     {} if params is None else OmegaConf.to_container(params))
    refused = invalid_jobs(config.hydra.job.config_name, jobs)
    if refused:
        raise ValueError(f"{len(refused)} of its {len(jobs)} jobs are invalid:\n  "
                         + "\n  ".join(refused))


def parallel_plan(overrides: Sequence[str], workers: int) -> tuple[list[str], str | None]:
    """The launcher overrides to run the sweep with, and why parallel was declined (None
    when it was not): `hydra/launcher=parallel hydra.launcher.n_jobs=<workers>` or none;
    a search also asks its sampler for `workers` trials at a time."""
    jobs, kind = _jobs_and_sweeper(overrides)
    reason = decline_reason(jobs, workers, cpu_count())
    if reason is not None:
        return [], f"running the {jobs} job(s) one after the other: {reason}"
    search = [f"hydra.sweeper.n_jobs={workers}"] if kind == "optuna" else []
    return ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={workers}", *search], None
