"""`make ui` stopped any way a person stops it ends everything it started: MLflow's server
and its uvicorn worker (and MLflow's job runner and huey consumers, where
MLFLOW_SERVER_ENABLE_JOB_EXECUTION brings them back), so the port is free for the next
`make ui` (issue 22, point 1).

Each case runs the real `make ui` on a free loopback port from a temporary folder (its own
store), in its own process group as a shell runs a job, signals it and waits, bounded,
until no process it started is left."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from experiments.tracking.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]

REPO = Path(__file__).resolve().parents[1]
START_S = 300  # two cores shared with other work: MLflow's server took ~1 min to answer
STOP_S = 60


def processes() -> dict[int, tuple[int, int, str]]:
    """Every live process: pid -> (parent pid, session id, command line). Zombies are dead."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[3]), cmdline.decode(errors="replace"))
    return table


def started_by(root: int) -> dict[int, tuple[int, str]]:
    """The processes below `root`, and every process in their sessions (MLflow's server
    has a session of its own; what it starts stays in it, even once reparented):
    pid -> (session id, command line)."""
    table = processes()
    below, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in below} - below
        below |= more
        grew = bool(more)
    sessions = {table[pid][1] for pid in below if pid in table}
    return {pid: (sid, cmd) for pid, (_, sid, cmd) in table.items()
            if pid in below or sid in sessions}


def left_running(started: dict[int, tuple[int, str]]) -> dict[int, str]:
    """What is still running of `started`, or of its sessions (started since)."""
    sessions = {sid for sid, _ in started.values()}
    return {pid: cmd for pid, (_, sid, cmd) in processes().items()
            if pid in started or sid in sessions}


def start_make_ui(folder: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"}

    def as_a_shell_job() -> None:
        # A job of an interactive shell: SIGINT and SIGHUP at their defaults, whatever the
        # test runner inherited (nohup, a background job).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    make = subprocess.Popen(
        ["make", "-s", "-f", str(REPO / "Makefile"), "ui", f"PY={sys.executable}", "STAMP=",
         f"PORT={port}"], cwd=folder, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=as_a_shell_job)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(make.stdout), daemon=True).start()
    return make, lines


def wait_until(what: str, done, timeout: float, printed: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s; make ui printed:\n{''.join(printed)}")
        time.sleep(0.3)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def python_of(make: subprocess.Popen) -> int:
    return next(pid for pid, (ppid, _, cmd) in processes().items()
                if ppid == make.pid and "experiments.ui" in cmd)


STOPS = {
    # Ctrl-C: the terminal sends SIGINT to the foreground job, make and python alike.
    "ctrl-c": lambda make: os.killpg(make.pid, signal.SIGINT),
    "sigterm-python": lambda make: os.kill(python_of(make), signal.SIGTERM),
    # make passes SIGTERM on to the recipe's process and waits for it.
    "sigterm-make": lambda make: os.kill(make.pid, signal.SIGTERM),
    # The terminal was closed: SIGHUP to the job.
    "sighup": lambda make: os.killpg(make.pid, signal.SIGHUP),
    # Nothing can run in python: its server must notice that its parent died.
    "sigkill-python": lambda make: os.kill(python_of(make), signal.SIGKILL),
}


@pytest.mark.parametrize("stop", list(STOPS))
def test_stopping_make_ui_ends_everything_it_started(tmp_path, stop):
    port = free_port()
    make, printed = start_make_ui(tmp_path, port)
    started: dict[int, tuple[int, str]] = {}
    try:
        wait_until("make ui did not print its link", lambda: any(
            "Ctrl-C stops it." in line for line in printed) or make.poll() is not None,
            START_S, printed)
        assert make.poll() is None, "".join(printed)
        # The server starts its uvicorn worker while it starts; wait for it, so that a
        # grandchild is there to be ended too.
        wait_until("no uvicorn worker started", lambda: any(
            "uvicorn" in cmd for _, cmd in started_by(make.pid).values()), START_S,
            printed)
        started = started_by(make.pid)
        assert any("mlflow server" in cmd for _, cmd in started.values()), started
        STOPS[stop](make)
        wait_until("make did not end", lambda: make.poll() is not None, STOP_S, printed)
        deadline = time.monotonic() + STOP_S
        while left_running(started) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert left_running(started) == {}
        assert port_is_free(port)
    finally:
        for pid in [*left_running(started), *started_by(make.pid)]:
            with contextlib.suppress(ProcessLookupError):  # what the test started, if left
                os.kill(pid, signal.SIGKILL)
        if make.poll() is None:
            make.kill()
