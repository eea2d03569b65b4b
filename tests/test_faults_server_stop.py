"""`python -m experiments.server` (make server) stopped by SIGTERM, or by SIGHUP as when its
terminal is closed, ends the MLflow server, its uvicorn worker and everything else it
started, and /health stops answering (issue 27, point 6; `make ui`: test_faults_ui_stop)."""

import contextlib
import os
import signal
import subprocess
import sys
import threading

import pytest
from test_faults_ui_stop import START_S, STOP_S, left_running, started_by, wait_until

from experiments.tracking.server import free_port, is_up

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]

STOPS = {
    "sigterm": lambda server: os.kill(server.pid, signal.SIGTERM),
    "sighup": lambda server: os.killpg(server.pid, signal.SIGHUP),  # the terminal closed
}


@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stopped_server_command_leaves_nothing_running(tmp_path, stop):
    port = free_port()

    def as_a_shell_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    server = subprocess.Popen(
        [sys.executable, "-m", "experiments.server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifact-root", str(tmp_path / "artifacts")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=as_a_shell_job)
    printed: list[str] = []
    threading.Thread(target=lambda: printed.extend(server.stdout), daemon=True).start()
    started: dict[int, tuple[int, str]] = {}
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until("the server did not print its URI", lambda: any(
            "MLFLOW_TRACKING_URI=" in line for line in printed) or server.poll() is not None,
            START_S, printed)
        assert server.poll() is None, "".join(printed)
        wait_until("no uvicorn worker started", lambda: any(
            "uvicorn" in cmd for _, cmd in started_by(server.pid).values()), START_S, printed)
        started = started_by(server.pid)
        assert is_up(uri)
        STOPS[stop](server)
        wait_until("the command did not end", lambda: server.poll() is not None, STOP_S,
                   printed)
        wait_until("processes it started are left", lambda: not left_running(started),
                   STOP_S, printed)
        assert not is_up(uri, timeout=2)
    finally:
        for pid in [*left_running(started), *started_by(server.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
