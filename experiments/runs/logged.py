"""What a logged run recorded about itself, read back: its config, and whether today's
code, data and machine are those it ran with."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from omegaconf import DictConfig, OmegaConf

from experiments.config import config_from_container
from experiments.runtime.blas import Machine, this_machine
from experiments.runtime.threads import chunk_threads
from experiments.tracking import tags
from experiments.tracking.git import git_state, uncommitted_differences


def load_logged_config(run_id: str) -> DictConfig:
    """The resolved config a run logged, typed and validated again."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="config/config.yaml", dst_path=tmp)
        container = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return config_from_container(container)


def logged_diff(run_id: str) -> str:
    """The uncommitted changes the run logged (git_diff.patch), or "" if it had none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="git_diff.patch", dst_path=tmp)
        except Exception:
            return ""
        return Path(path).read_text()


def machine_tags(machine: Machine) -> dict[str, str]:
    """The tags every run records of the machine its numbers were computed on."""
    return {tags.BLAS: machine.blas, tags.BLAS_KERNEL: machine.kernel,
            tags.BLAS_THREADS: str(machine.threads), tags.CPU: machine.cpu}


def machine_warnings(run_tags: dict[str, str]) -> list[str]:
    """What differs between the machine a run logged and the one a run would train on now.

    A run trains inside `chunk_threads`, so "now" is measured there too. Runs logged
    before these tags existed get no warning rather than a false one."""
    with chunk_threads():
        now = machine_tags(this_machine())
    names = {tags.BLAS: "BLAS", tags.BLAS_KERNEL: "BLAS kernel", tags.BLAS_THREADS:
             "BLAS threads", tags.CPU: "CPU"}
    return [f"{name} differs: the run used {run_tags[key]}, this is {now[key]} (the numbers "
            "then agree within seed noise, not bit for bit)"
            for key, name in names.items() if key in run_tags and run_tags[key] != now[key]]


def provenance_warnings(run_id: str, run_tags: dict[str, str], data_digest: str,
                        new_run: bool = False) -> list[str]:
    """What differs between the logged run and now: code commit, local changes, data,
    BLAS and CPU. `new_run`: the code now trains a new run, which logs its own changes."""
    commit, _, diff = git_state()
    warnings = []
    old_commit = run_tags.get(tags.GIT_COMMIT, "unknown")
    if old_commit != commit:
        warnings.append(f"code differs: the run used commit {old_commit}, this is {commit}")
    old_dirty = run_tags.get(tags.GIT_DIRTY) == tags.flag(True)
    differ = uncommitted_differences(logged_diff(run_id) if old_dirty else "", diff)
    if differ and old_dirty:
        warnings.append("uncommitted changes differ from the run's (its git_diff.patch) in "
                        + ", ".join(differ))
    elif differ:  # the run has no patch to see: the changes are this code's
        warnings.append("the run had no uncommitted changes; this code has some, in "
                        + ", ".join(differ)
                        + (" (the new run's git_diff.patch holds them)" if new_run else ""))
    old_digest = run_tags.get(tags.DATA_DIGEST)
    if old_digest != data_digest:
        warnings.append(f"data differs: the run used digest {old_digest}, now {data_digest}")
    return warnings + machine_warnings(run_tags)
