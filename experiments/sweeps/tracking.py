"""The Hydra callback that gives a multirun its parent MLflow run (`hydra.callbacks` in
conf/train.yaml): it opens the parent when the sweep starts, prepares the job processes
of parallel launchers, and writes the comparison report and ends the parent when the
sweep ends. It alone ends the parent, never left RUNNING: FINISHED at the sweep's end,
KILLED when a stop signal or Ctrl-C stopped the sweep, FAILED when it failed (a worker
died). Hydra skips on_multirun_end when the sweep stops or fails; the command's stop scope
(experiments.tracking.signals) then calls the same ending on its way out.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.config import ConfigError, validate
from experiments.datasets.base import data_config
from experiments.reporting.groups import best_group_metrics
from experiments.reporting.learning_curve_report import curve_metrics
from experiments.reporting.overview import parent_metrics, sweep_overview
from experiments.reporting.summary import SweepReport, write_report
from experiments.sweeps import launchers
from experiments.sweeps.parent import (
    end_orphaned_runs,
    report_jobs_without_run,
    save_runs_view,
    stopped_how,
    write_parent_run,
)
from experiments.sweeps.plan import check_grid_jobs, sweeper_kind, swept_keys
from experiments.sweeps.trial import seeds_problem
from experiments.tracking import signals, tags
from experiments.tracking.git import git_state, git_tags
from experiments.tracking.lifecycle import owner_tags
from experiments.tracking.server import TrackingServer, is_up
from experiments.tracking.store import SWEEP_SERVER_ENV, resolve_tracking_uri, use_store
from experiments.tracking.ui import DEFAULT_UI_PORT, sweep_links, ui_address

log = logging.getLogger(__name__)


class SweepTracking(Callback):
    """Groups a multirun's jobs under one parent MLflow run and reports on them at the end.

    A job that fails or diverges is recorded as FAILED and the sweep goes on
    (experiments.sweeps.job catches it), as does one SLURM stops (hydra/launcher=slurm).
    Ctrl-C or a stop signal to the sweep stops it: the running job ends KILLED (its own
    process did that) and the parent KILLED (`_end_parent`, here only).
    """

    def __init__(self, threads_per_job: int | None = None, local_server: bool = True) -> None:
        # Parallel launchers (hydra/launcher=parallel, slurm_local, slurm): BLAS threads per
        # job (None: cores // n_jobs), and whether a SQLite store is served to the jobs
        # through a local tracking server (experiments.sweeps.launchers, tracking.server).
        self.threads_per_job = threads_per_job
        self.local_server = local_server
        self.parent_run_id: str | None = None
        self._server: Any = None
        self._job_env: Any = None
        self._cancel_unwind: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Parallel launchers pickle the callbacks into each job; the server process and
        # the parent's ending belong to the sweep's process only.
        state = dict(self.__dict__)
        state.update(_server=None, _job_env=None, _cancel_unwind=None)
        return state

    # -- Hydra hooks ---------------------------------------------------------------------------

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_name = OmegaConf.select(config, "hydra.runtime.choices.sweep") or "custom"
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            # First: a command that cannot end the parent on its way out must not open it.
            self._cancel_unwind = signals.on_unwind(self._end_parent)
            _check_store_for_launcher(config)
            _check_config_and_data(config)
        except Exception as e:
            # Hydra turns a callback's exception into a warning and starts the jobs anyway;
            # SystemExit stops the sweep here, before any run exists.
            raise SystemExit(f"the sweep did not start: {type(e).__name__}: {e}") from e
        use_store(config.tracking.uri, config.tracking.experiment)
        commit, dirty, _ = git_state()
        # Sweeps given on the command line (-m optim.lr=0.01,0.1) have no sweeper.params;
        # their lists are in the overrides tag instead.
        params_node = OmegaConf.select(config, "hydra.sweeper.params")
        params = {} if params_node is None else OmegaConf.to_container(params_node, resolve=True)
        overrides = list(config.hydra.overrides.task)
        client = mlflow.MlflowClient()
        parent = client.create_run(
            mlflow.get_experiment_by_name(config.tracking.experiment).experiment_id,
            run_name=f"sweep-{sweep_name}-{datetime.now():%Y%m%d-%H%M%S}",
            tags={
                **owner_tags(),  # a sweep killed outright leaves it for tracking.reap
                tags.SWEEP: sweep_name,
                **git_tags(commit, dirty),
                tags.OVERRIDES: " ".join(overrides),
                tags.SWEEP_DIR: str(sweep_dir.resolve()),
                tags.SWEEPER: sweeper_kind(config.hydra),
                tags.NOTE: f"Sweep {sweep_name}: parameters {params}. The child "
                                       "runs are nested below; the comparison report is "
                                       "under the artifacts' report/ folder.",
            },
        )
        self.parent_run_id = parent.info.run_id
        for key, values in params.items():
            client.log_param(self.parent_run_id, f"sweep.{key}", str(values))
        # The jobs name their runs by these (experiments.sweeps.job), the report its columns.
        swept = swept_keys(overrides, params)
        write_parent_run(sweep_dir, self.parent_run_id, sweep_name, swept)
        log.info("sweep %s: parent MLflow run %s", sweep_name, self.parent_run_id)
        self._prepare_job_processes(config, sweep_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        launchers.log_job_threads()  # in the job's log: what its process inherited

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        parent_run_id, overview = self.parent_run_id, None
        if parent_run_id is None:
            return
        try:
            self._stop_job_processes_support()
            client = mlflow.MlflowClient()
            self._end_orphans(client, parent_run_id,
                              "its job process ended without ending the run")
            report_jobs_without_run(client, parent_run_id, Path(config.hydra.sweep.dir))
            try:
                out_dir = Path(config.hydra.sweep.dir) / "report"
                report = write_report(parent_run_id, out_dir, log_to_parent=True)
                client.set_tag(parent_run_id, tags.SWEEP_JOBS, report.summary)
                overview = self._log_summary(client, config, report)
            except Exception:
                # A broken report must not lose the sweep: the runs are there, and the
                # report can be rebuilt with `python -m experiments.report`.
                log.exception("the comparison report failed; rerun python -m "
                              "experiments.report")
        except BaseException as e:  # stopped while writing the report: not FINISHED
            self._end_parent(e)
            raise
        self._end_parent(None)
        # Last, so that the sweep ends on it rather than on the last job's progress bar.
        print("\n" + (overview or f"Sweep over; its parent run is {parent_run_id}."),
              flush=True)

    def _log_summary(self, client: mlflow.MlflowClient, config: DictConfig,
                     report: SweepReport) -> str:
        """Log the sweep's summary metrics on the parent run; return the terminal overview."""
        parent = client.get_run(self.parent_run_id)
        wall_time_s = time.time() - parent.info.start_time / 1000
        for key, value in parent_metrics(report.runs, wall_time_s).items():
            client.log_metric(self.parent_run_id, key, value, step=0)
        # The best setting as its seeds' mean and interval, not its luckiest run.
        best_metrics, best_label = best_group_metrics(report.groups)
        for key, value in best_metrics.items():
            client.log_metric(self.parent_run_id, key, value, step=0)
        if best_label is not None:
            client.set_tag(self.parent_run_id, tags.BEST_GROUP, best_label)
        for key, value in curve_metrics(report.curves).items():
            client.log_metric(self.parent_run_id, key, value, step=0)
        uri = resolve_tracking_uri(config.tracking.uri)
        save_runs_view(client, self.parent_run_id,
                       [(g.label, [r.run_id for r in g.runs]) for g in report.groups])
        links = sweep_links(ui_address(uri), parent.info.experiment_id, self.parent_run_id)
        served = uri.startswith(("http://", "https://"))
        # The UI may already run on another port (or 5000 be taken): make ui prints them.
        hint = "the tracking server's" if served else (
            f"start it with `make ui`, port {DEFAULT_UI_PORT}; `make ui PORT=N` reprints "
            "these links on port N")
        return sweep_overview(parent.data.tags.get(tags.SWEEP, "custom"), report.summary,
                              report.runs, wall_time_s, report.out_dir, self.parent_run_id,
                              links, hint)

    # -- the parent's end ------------------------------------------------------------------

    def _end_parent(self, error: BaseException | None) -> None:
        """End the parent: FINISHED (error None), KILLED (a stop: Ctrl-C, a stop signal) or
        FAILED (any other error), after the runs of the sweep still RUNNING, which no job
        can end any more. The only place the parent ends, once."""
        # Before anything else, so that no signal can come between taking the parent and
        # ending it; one that lands before this line leaves both, for the stop scope.
        with signals.ending():
            parent_run_id, self.parent_run_id = self.parent_run_id, None
            cancel, self._cancel_unwind = self._cancel_unwind, None
            if cancel is not None:
                cancel()
            if parent_run_id is None:
                return
            self._stop_job_processes_support()
            client = mlflow.MlflowClient()
            status, reason = "FINISHED", None
            if error is not None:
                status, reason, orphans = stopped_how(error)
                self._end_orphans(client, parent_run_id, orphans)
            try:
                if reason is not None:
                    client.set_tag(parent_run_id, tags.FAILURE_REASON, reason)
                client.set_terminated(parent_run_id, status=status)
            except Exception:
                log.exception("could not end the sweep's parent run %s as %s",
                              parent_run_id, status)

    # -- jobs in other processes (experiments.sweeps.launchers) --------------------------------

    def _prepare_job_processes(self, config: DictConfig, sweep_dir: Path) -> None:
        """Before a parallel launcher starts its job processes: their BLAS threads, and for a
        SQLite store a local tracking server they log through (SQLite has one writer)."""
        kind = launchers.launcher_kind(config)
        if kind == "basic":
            return
        self._job_env = env = launchers.JobEnvironment()
        threads = launchers.blas_threads(config, self.threads_per_job)
        if threads is not None:
            for name in launchers.THREAD_VARS:
                env.set(name, str(threads))
            log.info("%s launcher: %d BLAS thread(s) per job", kind, threads)
        store = resolve_tracking_uri(config.tracking.uri)
        if kind == "submitit_local" or kind == "joblib":
            if store.startswith("sqlite:") and self.local_server:
                self._server = TrackingServer(
                    store, Path("mlruns").resolve(),  # MLflow's default beside mlflow.db
                    log_path=sweep_dir / "mlflow_server.log")
                # Not waited for here: it starts (seconds of imports and opening the
                # store) while the workers start and import theirs; each job waits for it
                # in tracking.store.connect.
                uri = self._server.launch()
                env.set(SWEEP_SERVER_ENV, f"{store} {uri}")
                env.set("MLFLOW_TRACKING_URI", uri)
                log.info("the jobs log through a local MLflow server at %s over %s", uri, store)

    def _stop_job_processes_support(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.stop()
            except Exception:
                log.exception("could not stop the sweep's tracking server")
        env, self._job_env = self._job_env, None
        if env is not None:
            env.restore()

    @staticmethod
    def _end_orphans(client: mlflow.MlflowClient, parent_run_id: str, reason: str) -> None:
        """Runs of this sweep still RUNNING once no job runs: end them KILLED, and say so."""
        try:
            names = end_orphaned_runs(client, parent_run_id, reason)
        except Exception:
            log.exception("could not check the sweep's runs for ones left RUNNING")
            return
        if names:
            message = (f"sweep: {len(names)} run(s) were still RUNNING when the sweep ended "
                       f"and are now KILLED ({reason}): {', '.join(names)}. Finished runs "
                       f"and everything the killed ones logged are kept.")
            log.error("%s", message)
            print(message, file=sys.stderr, flush=True)
            client.set_tag(parent_run_id, tags.KILLED_RUNS, ", ".join(names))


def _check_config_and_data(config: DictConfig) -> None:
    """Before the parent run exists: the config's own problems, and the data, downloaded
    here once when allowed and missing (the jobs, perhaps in parallel, then find it).
    Each job of a grid is checked too (plan.invalid_jobs); a search's trials check theirs."""
    job_config = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    validate(job_config)
    params = OmegaConf.select(config, "hydra.sweeper.params")
    swept = swept_keys(list(config.hydra.overrides.task),
                       {} if params is None else OmegaConf.to_container(params, resolve=True))
    problem = seeds_problem(job_config.search.seeds, sweeper_kind(config.hydra), list(swept))
    if problem is not None:
        raise ConfigError(problem)
    check_grid_jobs(config)
    data_config(job_config.data).prepare()


def _check_store_for_launcher(config: DictConfig) -> None:
    """Fail before any job starts when the jobs could not reach the store."""
    store = resolve_tracking_uri(config.tracking.uri)
    if store.startswith(("http://", "https://")):
        if not is_up(store, timeout=10):
            raise RuntimeError(f"no MLflow tracking server answers at {store} "
                               "(tracking.uri); start it or fix the address")
    elif launchers.launcher_kind(config) == "submitit_slurm" and not store.startswith(
            ("postgresql", "mysql", "mssql")):
        raise RuntimeError(
            f"hydra/launcher=slurm runs the jobs on other machines, which cannot write to "
            f"{store}: log to a shared tracking server, e.g. tracking=server "
            "tracking.uri=http://<server>:5000")
