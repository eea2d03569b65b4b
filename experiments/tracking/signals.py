"""The one place where a stop signal becomes the end of a run, in every kind of process:
a single run, a sweep and its in-process jobs, a joblib worker, a SLURM job.

The stop signals: SIGINT (Ctrl-C), SIGTERM (kill, scancel, SLURM's time limit), SIGHUP
(the terminal was closed) and the signal submitit has SLURM send before the time limit or
on preemption (--signal=USR2@<signal_delay_s>; SUBMITIT_PREEMPT_SIGNAL names another).
submitit's own handler for it raises its error wherever the job is; inside an MLflow
request that error was taken for an unreachable server, and the job trained on until
SLURM killed it. A signal the process inherited as ignored stays ignored: nohup's SIGHUP,
a background job's SIGINT.

    with stop_scope():   while open, the first stop signal raises KeyboardInterrupt
                         (`stopped`) wherever the main thread is; later ones are
                         remembered until that scope closes, so that they cannot
                         interrupt the ending of what the first one stopped
    with ending():       around ending a run: signals that arrive meanwhile wait until it
                         has ended, then raise it (unless a stop is under way)
    on_unwind(end)       `end(error)` runs, inside ending(), when the outermost scope closes
                         with it still registered: how a sweep's parent run is ended when
                         the sweep stops or fails past Hydra, which then skips its
                         on_multirun_end (experiments.sweeps.tracking)

The state is the process's (_REGIME), because signal handlers are: the scopes of a sweep
and of its in-process job share one handler, instead of each installing its own over the
other's and each deciding differently what a signal means.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)


def preemption_signal() -> signal.Signals:
    """The signal submitit has SLURM send before the time limit or on preemption."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", signal.SIGUSR2)


def stop_signals() -> tuple[signal.Signals, ...]:
    """Every signal that stops a run, in the order their handlers are installed."""
    found = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, preemption_signal())
    return tuple(dict.fromkeys(found))


def stopped(signum: int) -> KeyboardInterrupt:
    """What a stop signal raises: KeyboardInterrupt, as Ctrl-C does, so that `except
    Exception` lets it through, and that a command it ends dies of SIGINT (exit status
    130 to a shell, which then stops its script too); the interpreter does so only for
    KeyboardInterrupt itself, not a subclass. Its message names the signal."""
    name = signal.Signals(signum).name
    slurm = signum == preemption_signal() and signum not in (
        signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    return KeyboardInterrupt(f"received signal {name}"
                             + (" from SLURM: time limit near, or preempted" if slurm else ""))


Unwind = Callable[[BaseException | None], None]


class _Regime:
    """Which stop signals are handled, whether a stop is under way, what waits for it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.depth = 0  # open scopes
        self.previous: dict[int, Any] = {}
        self.stopped_at: int | None = None  # depth of the scope the stop was raised in
        self.deferring = 0  # open ending() blocks
        self.received: list[int] = []
        self.unwinds: list[Unwind] = []

    def handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopped_at is not None or self.deferring or _in_ending_code(frame):
            self.received.append(signum)
            log.warning("received %s while stopping or ending a run; that ends first", name)
            return
        self.stopped_at = self.depth
        raise stopped(signum)


_REGIME = _Regime()
# Code in which a signal must wait as it does in ending(): the first steps of a context
# manager's __exit__, before it has entered ending() (tracking.lifecycle registers its own).
_ENDING_CODE: set[Any] = set()


def _in_ending_code(frame: FrameType | None) -> bool:
    return frame is not None and frame.f_code in _ENDING_CODE


def defers_signals(function: Callable[..., Any]) -> Callable[..., Any]:
    """Mark `function` (an __exit__ that ends a run) as code a signal waits in: one that
    lands as the block finishes, before the ending starts, must not cut it short."""
    _ENDING_CODE.add(function.__code__)
    return function


# Handlers can only be installed, and only run, in the main thread; compared with
# get_ident (C) so that no Python call precedes what ending() must do first.
_MAIN_THREAD = threading.main_thread().ident


class stop_scope:  # noqa: N801 (used as a function: `with stop_scope():`)
    """While open, the first stop signal raises KeyboardInterrupt. Scopes nest and share
    one handler; the outermost installs it and, on closing, runs what on_unwind registered
    and restores the previous handlers. Outside the main thread it does nothing."""

    def __enter__(self) -> stop_scope:
        self._active = threading.get_ident() == _MAIN_THREAD
        if not self._active:
            return self
        regime = _REGIME
        regime.depth += 1  # first: if a signal lands below, this scope is open to close
        if regime.depth == 1:
            for signum in stop_signals():
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    regime.previous[signum] = signal.signal(signum, regime.handle)
        return self

    @defers_signals
    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._active:
            return
        regime = _REGIME
        if regime.depth == 1:
            try:
                with ending(raise_deferred=False):
                    while regime.unwinds:
                        _run_unwind(regime.unwinds.pop(), error)
            finally:
                pending = regime.received[:1] if regime.stopped_at is None else []
                for signum, handler in regime.previous.items():
                    signal.signal(signum, handler)
                regime.reset()
        else:
            pending = regime.received[:1] if regime.stopped_at is None else []
            # The scope the stop came through is closed: what it stopped has ended, and
            # further signals act again (a stuck ending further out can still be stopped).
            if regime.stopped_at is not None and regime.stopped_at >= regime.depth:
                regime.stopped_at = None
            regime.received.clear()
            regime.depth -= 1
            if pending:
                regime.stopped_at = regime.depth
        # A signal that landed as the scope closed, no stop under way: it stops now.
        if pending and not isinstance(error, KeyboardInterrupt):
            raise stopped(pending[0])


def _run_unwind(end: Unwind, error: BaseException | None) -> None:
    try:
        end(error)
    except Exception:
        log.exception("could not end what %r was registered to end", end)


class ending:  # noqa: N801 (used as a function: `with ending():`)
    """Around ending a run (or a sweep's parent): signals arriving meanwhile wait. When the
    block is over, the first of them raises KeyboardInterrupt, unless a stop is already
    under way (its exception is propagating) or `raise_deferred` is False."""

    @defers_signals
    def __init__(self, raise_deferred: bool = True) -> None:
        self.raise_deferred = raise_deferred

    @defers_signals
    def __enter__(self) -> ending:
        _REGIME.deferring += 1  # first: no call before it, where a signal could land
        self._active = threading.get_ident() == _MAIN_THREAD
        if not self._active:
            _REGIME.deferring -= 1
        return self

    @defers_signals
    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._active:
            return
        regime = _REGIME
        regime.deferring -= 1
        if regime.deferring or not regime.received or not self.raise_deferred:
            return
        if regime.stopped_at is not None or regime.depth == 0:
            return
        first = regime.received[0]
        regime.received.clear()
        regime.stopped_at = regime.depth
        raise stopped(first)


def on_unwind(end: Unwind) -> Callable[[], None]:
    """Have the outermost stop scope call `end(error)` when it closes (error: the exception
    it closes with, or None); returns the function that cancels this, for when `end`'s
    owner has ended what it holds itself. Needs an open scope in the main thread."""
    if _REGIME.depth == 0 or threading.get_ident() != _MAIN_THREAD:
        raise RuntimeError("no stop scope is open: run the command's Hydra app inside "
                           "experiments.tracking.signals.stop_scope()")
    _REGIME.unwinds.append(end)

    def cancel() -> None:
        if end in _REGIME.unwinds:
            _REGIME.unwinds.remove(end)

    return cancel
