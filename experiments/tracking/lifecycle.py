"""How a run ends: always FINISHED, FAILED or KILLED, never left RUNNING.

`ended_run` ends the active run with the status that fits how its block exited: FINISHED,
FAILED (an exception, or a loss that became NaN/inf) or KILLED (Ctrl-C, SIGTERM, SIGHUP,
SLURM's warning: the stop signals of tracking.signals, which turns them into exceptions).
`ended_run.starting(...)` also starts the run, so that no signal finds it made but unowned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import mlflow

from cnn.training import DivergenceError
from experiments.tracking import signals, tags
from experiments.tracking.offline import is_database_store, is_tracking_outage

log = logging.getLogger(__name__)


class ended_run:  # noqa: N801 (used as a function: `with ended_run(run_id):`)
    """End the active run `run_id` when the block exits, with the status that fits.

    Normal exit: FINISHED. DivergenceError: FAILED, tagged with the epoch, step and reason.
    KeyboardInterrupt (Ctrl-C, or a stop signal while the block runs: tracking.signals):
    KILLED, tagged with the signal. Any other exception: FAILED with the error's type and
    message as tags. Exceptions propagate. Only this run is ended: a sweep's parent is
    its sweep's to end (experiments.sweeps.tracking). Stop signals arriving while the run
    is being ended wait until it has ended; if no stop was under way, they then raise
    KeyboardInterrupt. active=False: `run_id` is not the active run but one made with
    MlflowClient.create_run (a search trial's, whose seed runs are active in turn).
    """

    def __init__(self, run_id: str | None = None,
                 start: Mapping[str, Any] | None = None, active: bool = True) -> None:
        self.run_id = run_id
        self.active: mlflow.ActiveRun | None = None
        self._start = start
        self._is_active = active
        self._scope = signals.stop_scope()

    @classmethod
    def starting(cls, **start_run: Any) -> ended_run:
        """Start the run (mlflow.start_run(**start_run)) as the block is entered, with the
        stop signals already handled: a signal at any point of its start ends it KILLED.
        It is created tagged with this host and process (owner_tags), so that
        tracking.reap can tell it from a live one even if it got no further."""
        return cls(start=start_run)

    def __enter__(self) -> ended_run:
        self._client = mlflow.MlflowClient()
        try:
            self._scope.__enter__()
            if self._start is not None:
                self._start_run()
        except BaseException as e:  # a signal as the handlers were installed, or the start failed
            if self.run_id is not None or mlflow.active_run() is not None:
                self.run_id = self.run_id or mlflow.active_run().info.run_id
                self.__exit__(type(e), e, e.__traceback__)
            else:  # no run was made: nothing to end
                self._scope.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def _start_run(self) -> None:
        kwargs = dict(self._start or {})
        kwargs["tags"] = {**(kwargs.get("tags") or {}), **owner_tags()}
        # Into a database store, signals wait while the run's rows are written: one that
        # lands between the row and MLflow's record of its active run would leave the run
        # RUNNING with nobody to end it (or ended FINISHED by MLflow's exit hook). After
        # this block, a waiting signal raises here, and the run ends KILLED. A server's
        # request is not deferred (a stop must not wait for its retries): its run carries
        # the owner tags from its creation, for tracking.reap.
        with signals.ending() if is_database_store() else contextlib.nullcontext():
            self.active = mlflow.start_run(**kwargs)
            self.run_id = self.active.info.run_id

    @signals.defers_signals
    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            with signals.ending():
                _end_as(self._client, self.run_id, error, self._is_active)
        except BaseException as late:
            self._scope.__exit__(type(late), late, late.__traceback__)
            raise
        self._scope.__exit__(kind, error, tb)


def owner_tags() -> dict[str, str]:
    """Who trains a run, so that tracking.reap can tell a crashed run from a live one."""
    return {tags.HOST: socket.gethostname(), tags.PID: str(os.getpid())}


def _end_as(client: mlflow.MlflowClient, run_id: str, error: BaseException | None,
            active: bool = True) -> None:
    """Tag why the run stopped, if it did, and end it with the status that says so."""
    if error is None:
        status = "FINISHED"
    elif isinstance(error, DivergenceError):
        status = "FAILED"
        _safe_tags(client, run_id, {
            tags.FAILURE_REASON: error.reason,
            tags.FAILURE_EPOCH: str(error.epoch),
            tags.FAILURE_STEP: str(error.step),
            tags.ERROR_TYPE: "DivergenceError",
        })
    elif isinstance(error, KeyboardInterrupt):
        status = "KILLED"
        _safe_tags(client, run_id, {tags.FAILURE_REASON: f"interrupted: {error or 'Ctrl-C'}"})
    else:
        status = "FAILED"
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        _safe_tags(client, run_id, {tags.FAILURE_REASON: text[:5000],
                                    tags.ERROR_TYPE: type(error).__name__})
    _end(client, run_id, status, active)


def _end(client: mlflow.MlflowClient, run_id: str, status: str, active: bool) -> None:
    if status == "FINISHED":  # a resumed run no longer failed: drop its old reason
        _drop_failure_tags(client, run_id)
    try:
        if active:
            mlflow.end_run(status=status)
        else:
            client.set_terminated(run_id, status=status)
    except Exception as e:
        if not is_tracking_outage(e):
            raise
        # Do not hide why the run stopped behind the server being away.
        log.error("could not end run %s as %s: the tracking server is unreachable",
                  run_id, status)


FAILURE_TAGS = (tags.FAILURE_REASON, tags.ERROR_TYPE, tags.FAILURE_EPOCH, tags.FAILURE_STEP)


def _drop_failure_tags(client: mlflow.MlflowClient, run_id: str) -> None:
    try:
        present = client.get_run(run_id).data.tags
        for key in FAILURE_TAGS:
            if key in present:
                client.delete_tag(run_id, key)
    except Exception as e:
        # A stale reason on a finished run is wrong, but not worth failing the run for.
        log.warning("could not remove the old failure tags of run %s: %s", run_id, e)


def _safe_tags(client: mlflow.MlflowClient, run_id: str, values: Mapping[str, str]) -> None:
    # Recording why a run failed must not hide the failure itself.
    try:
        for key, value in values.items():
            client.set_tag(run_id, key, value)
    except Exception:
        log.exception("could not tag run %s with its failure", run_id)


def http_retries_bounded() -> None:
    """Fewer, shorter retries against a tracking server than MLflow's default (several
    minutes per call): training keeps what it cannot send (tracking.offline), so a server
    that is away costs seconds per epoch, not minutes. The variables still win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
