"""How a run ends: always FINISHED, FAILED or KILLED, never left RUNNING.

`ended_run` ends the active run with the status that fits how its block exited: FINISHED,
FAILED (an exception, or a loss that became NaN/inf) or KILLED (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import mlflow

from cnn.training import DivergenceError
from experiments.tracking import tags
from experiments.tracking.offline import is_tracking_outage

log = logging.getLogger(__name__)


# SIGUSR2: SLURM's warning to a job of hydra/launcher=slurm that its time limit is near (or
# that it is preempted), which submitit asks for with --signal=USR2@<signal_delay_s>.
# submitit's own handler raises its error wherever the job is; inside an MLflow request
# that error is taken for an unreachable server, and the job trains on until SLURM kills it.
# SIGHUP: the terminal was closed; the run must end as for SIGTERM, not stay RUNNING.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGHUP)


class _StopSignals:
    """While installed, the first stop signal (Ctrl-C, SIGTERM, SIGHUP, SLURM's SIGUSR2)
    raises KeyboardInterrupt; once the run is being ended (`ending`), later ones are only
    remembered. A burst of Ctrl-C would otherwise interrupt `mlflow.end_run` itself and
    leave the run RUNNING."""

    def __init__(self) -> None:
        self.ending = False
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.ending:
            self.received.append(signum)
            log.warning("received %s while ending the run; it ends first", name)
            return
        self.ending = True
        why = " from SLURM: time limit near, or preempted" if signum == signal.SIGUSR2 else ""
        raise KeyboardInterrupt(f"received signal {name}{why}")

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            current = signal.getsignal(signum)
            # An ignored signal stays ignored: a shell's background job ignores SIGINT,
            # nohup ignores SIGHUP.
            if current is not signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


@contextmanager
def ended_run(run_id: str, also_end: tuple[str, ...] = ()) -> Iterator[None]:
    """End the active run `run_id` when the block exits, with the status that fits.

    Normal exit: FINISHED. DivergenceError: FAILED, tagged with the epoch, step and reason.
    KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP inside this block): KILLED, and so are the
    runs in `also_end` (a sweep's parent, since the whole sweep stops). Any other exception:
    FAILED with the error's type and message as tags. Exceptions propagate. Stop signals
    arriving while the run is being ended wait until it has ended; if the block had
    finished normally, they then raise KeyboardInterrupt.
    """
    client = mlflow.MlflowClient()
    status = "FINISHED"
    guard = _StopSignals()
    guard.install()
    try:
        yield
    except DivergenceError as e:
        guard.ending = True
        status = "FAILED"
        _safe_tags(client, run_id, {
            tags.FAILURE_REASON: e.reason,
            tags.FAILURE_EPOCH: str(e.epoch),
            tags.FAILURE_STEP: str(e.step),
            tags.ERROR_TYPE: "DivergenceError",
        })
        raise
    except KeyboardInterrupt as e:
        guard.ending = True
        status = "KILLED"
        _safe_tags(client, run_id, {tags.FAILURE_REASON: f"interrupted: {e or 'Ctrl-C'}"})
        for other in also_end:
            _safe_end(client, other, "KILLED")
        raise
    except BaseException as e:
        guard.ending = True
        status = "FAILED"
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        _safe_tags(client, run_id, {tags.FAILURE_REASON: text[:5000],
                                    tags.ERROR_TYPE: type(e).__name__})
        raise
    finally:
        guard.ending = True
        try:
            _end(client, run_id, status)
        finally:
            guard.restore()
    if guard.received:  # a stop asked for while the finished run was being ended
        raise KeyboardInterrupt(f"received signal {signal.Signals(guard.received[0]).name}")


def _end(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    if status == "FINISHED":  # a resumed run no longer failed: drop its old reason
        _drop_failure_tags(client, run_id)
    try:
        mlflow.end_run(status=status)
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


def _safe_end(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    try:
        client.set_terminated(run_id, status=status)
    except Exception:
        log.exception("could not end run %s as %s", run_id, status)


def http_retries_bounded() -> None:
    """Fewer, shorter retries against a tracking server than MLflow's default (several
    minutes per call): training keeps what it cannot send (tracking.offline), so a server
    that is away costs seconds per epoch, not minutes. The variables still win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
