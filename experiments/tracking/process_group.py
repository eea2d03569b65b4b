"""A child process and everything it starts as one process group, ended together and never
outliving the process that started it.

`mlflow server` is not one process: it starts uvicorn (or gunicorn) to serve, and a job
runner that starts huey consumers; they all stay in the session the server was started in.
Ending the server alone leaves them holding its port. So the server is started as the
leader of a session of its own (`start_new_session=True`), and ending it means signalling
that whole group and waiting until no live process is left in it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for subprocess.Popen that has the child sent SIGTERM when this process
    dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG), so that a server is not orphaned
    when nothing can run in its parent to stop it. None elsewhere than Linux, and off the
    main thread: the kernel signals the child when the *thread* that started it ends."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not \
            threading.main_thread():
        return None
    # Looked up before the fork, so that the child only makes one C call before exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal
            os._exit(1)

    return set_parent_death_signal


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. On Linux zombies do not count: once
    reparented, they wait for init to reap them, which may take seconds."""
    if not sys.platform.startswith("linux"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to every process of group `pgid`, if any is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def end_group(process: subprocess.Popen, timeout: float) -> None:
    """End the group `process` leads: SIGTERM to all of it, then SIGKILL to whatever of it
    still runs after `timeout` seconds (or once the leader has ended, after the rest of
    them); the leader is reaped."""
    pgid = process.pid
    if process.poll() is not None and not group_alive(pgid):
        return  # all ended, and the id, the leader reaped, may be another group's by now
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # SIGKILL below
    # The leader's children got the SIGTERM too (huey consumers end their jobs first);
    # give them what is left of the time, but none may outlive this call.
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pgid):
        signal_group(pgid, signal.SIGKILL)
    process.wait(timeout)


def exit_on_signals(signals: Iterable[int]) -> dict[int, Any]:
    """Make each of `signals` whose disposition is the default (ending the process without
    cleanup) raise SystemExit(128 + signal) instead, so that `finally` blocks and atexit
    handlers run. Handlers someone installed, and ignored signals (nohup), are kept.
    Returns the replaced handlers, for restore_signals. Main thread only (else nothing)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def exit_cleanly(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    return {signum: signal.signal(signum, exit_cleanly) for signum in signals
            if signal.getsignal(signum) is signal.SIG_DFL}


def restore_signals(previous: dict[int, Any]) -> None:
    """Put back the handlers exit_on_signals replaced."""
    if threading.current_thread() is threading.main_thread():
        for signum, handler in previous.items():
            signal.signal(signum, handler)
