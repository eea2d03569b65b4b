"""A sweep's parent run: how its jobs find it, how its children are listed, how the
runs a dead worker left RUNNING are ended, which jobs made no run, what a sweep that
stopped early ends as, and the saved view of its runs in MLflow's UI (tracking.views)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow

from experiments.tracking import tags
from experiments.tracking.ui import sweep_links
from experiments.tracking.views import has_sweep_view, save_sweep_view

log = logging.getLogger(__name__)

# Written into the sweep folder when the sweep starts; each job of the sweep reads it to
# find its parent run. A file rather than an environment variable: it belongs to one
# sweep only and stays readable afterwards.
PARENT_RUN_FILE = "mlflow_parent_run.json"


def write_parent_run(sweep_dir: Path, run_id: str, sweep: str,
                     swept: dict[str, list[str]] | None = None) -> None:
    """Record the parent run in the sweep folder, for the jobs; `swept`: the keys the sweep
    varies with their values (plan.swept_keys), which each job names its run by."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PARENT_RUN_FILE).write_text(json.dumps({
        "run_id": run_id, "sweep": sweep, "tracking_uri": mlflow.get_tracking_uri(),
        "swept": swept or {}}))


def read_parent_run(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The parent run a sweep's jobs belong to ({"run_id", "sweep", "swept"}), if one was
    opened."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def end_orphaned_runs(client: Any, parent_run_id: str, reason: str) -> list[str]:
    """End every child of the sweep still RUNNING as KILLED, tagged with `reason`.

    Called from the sweep's process once no job can still be running: a worker that was
    killed (SIGKILL, out of memory) cannot end its own run. The seed runs of a search's
    trials are the sweep's too. Returns their names, seed runs first.
    """
    parent = client.get_run(parent_run_id)
    experiment = [parent.info.experiment_id]
    running = "attributes.status = 'RUNNING'"
    runs = client.search_runs(
        experiment, filter_string=f"tags.`{tags.PARENT}` = '{parent_run_id}' and {running}",
        max_results=5000)
    # A search trial over replicates (experiments.sweeps.trial) has its seed runs below it.
    trials = {r.info.run_id for r in client.search_runs(
        experiment, filter_string=f"tags.`{tags.PARENT}` = '{parent_run_id}' "
                                  f"and tags.`{tags.TRIAL_SEEDS}` LIKE '%'", max_results=5000)}
    if trials:
        seed_runs = client.search_runs(experiment, filter_string=running, max_results=5000)
        runs = [r for r in seed_runs if r.data.tags.get(tags.PARENT) in trials] + runs
    names = []
    for run in runs:
        client.set_tag(run.info.run_id, tags.FAILURE_REASON, reason)
        client.set_tag(run.info.run_id, tags.ERROR_TYPE, "WorkerDied")
        client.set_terminated(run.info.run_id, status="KILLED")
        names.append(run.info.run_name)
    return names


def jobs_without_run(client: Any, parent_run_id: str, sweep_dir: str | Path
                     ) -> tuple[list[str], int]:
    """The jobs of the sweep that made no run (refused, or failed before their run
    started), by number, and how many runs the jobs made. A job is known by the folder
    Hydra gives it in the sweep folder (numbered, holding its .hydra/), a run by its
    job-number tag."""
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`{tags.PARENT}` = '{parent_run_id}'",
                              max_results=50000)
    made = {r.data.tags.get(tags.JOB_NUM) for r in runs}
    folders = [p.name for p in Path(sweep_dir).iterdir()
               if p.name.isdigit() and (p / ".hydra").is_dir()]
    return sorted((n for n in folders if n not in made), key=int), len(runs)


def report_jobs_without_run(client: Any, parent_run_id: str,
                             sweep_dir: Path) -> None:
    """Say which jobs made no run; with none made at all, the sweep fails (SystemExit)."""
    missing, made = jobs_without_run(client, parent_run_id, sweep_dir)
    if not missing:
        return
    message = (f"sweep: {len(missing)} job(s) made no run (refused, or failed before their "
               f"run started; see their logs in {sweep_dir}/<job>/): job(s) "
               + ", ".join(missing))
    log.error("%s", message)
    print(message, file=sys.stderr, flush=True)
    client.set_tag(parent_run_id, tags.NO_RUN_JOBS, ", ".join(missing))
    if made == 0:
        raise SystemExit(f"no job of the sweep made a run; see their logs in {sweep_dir}/<job>/")


def stopped_how(error: BaseException) -> tuple[str, str, str]:
    """The parent's status and reason for a sweep that did not get to its end, and the
    reason its runs still RUNNING are ended KILLED with."""
    if isinstance(error, SystemExit) and error.__context__ is not None:
        error = error.__context__  # Hydra reports an error and exits: the error says why
    if isinstance(error, KeyboardInterrupt):
        return "KILLED", f"interrupted: {error or 'Ctrl-C'}", "the sweep was interrupted"
    text = f"{type(error).__name__}: {error}"[:5000]
    if type(error).__name__ == "TerminatedWorkerError":  # joblib's
        return "FAILED", text, ("its worker process died (killed, e.g. SIGKILL or out of "
                                "memory) and the parallel sweep was stopped")
    return "FAILED", text, f"the sweep failed: {text[:500]}"


def save_runs_view(client: Any, parent_run_id: str,
                   groups: Iterable[tuple[str, Iterable[str]]] | None = None) -> None:
    """Save the sweep's view of its runs' curves; `groups`: (label, run ids) of its seed
    groups, which each run is tagged with (tags.SEED_GROUP) and the view groups them by.
    Without them (a sweep from before, or whose report failed) the view puts every run in
    one group, by the sweep tag all of them have."""
    parent = client.get_run(parent_run_id)
    group_tag = tags.SWEEP
    if groups is not None:
        for label, run_ids in groups:
            for run_id in run_ids:
                client.set_tag(run_id, tags.SEED_GROUP, label)
        group_tag = tags.SEED_GROUP
    save_sweep_view(client, parent.info.experiment_id, parent_run_id,
                    f"{parent.info.run_name}: its runs' curves", group_tag)


class NoSweepError(LookupError):
    """The store holds no sweep to report on; the message says where it looked."""


def latest_sweep(experiment: str) -> str:
    """The run id of the most recent sweep parent run in the experiment."""
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise NoSweepError(f"no experiment {experiment!r} in {mlflow.get_tracking_uri()}")
    runs = mlflow.MlflowClient().search_runs(
        [exp.experiment_id], filter_string=f"tags.{tags.SWEEP_DIR} LIKE '%'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise NoSweepError(f"no sweep in experiment {experiment!r}; run `make sweep` first")
    return runs[0].info.run_id


def latest_sweep_links(experiment: str, address: str) -> tuple[str, dict[str, str]] | None:
    """The latest sweep's name and its links on the UI at `address` (the ones it printed
    when it ended, there for port 5000), or None when the experiment has no sweep."""
    try:
        parent_run_id = latest_sweep(experiment)
    except NoSweepError:
        return None
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    if not has_sweep_view(client.get_experiment(experiment_id).tags, parent_run_id):
        save_runs_view(client, parent_run_id)
    return parent.info.run_name, sweep_links(address, experiment_id, parent_run_id)
