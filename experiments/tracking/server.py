"""An MLflow tracking server in a child process, so that several processes can log to one
store at once.

SQLite allows one writer at a time: several sweep jobs writing to `mlflow.db` directly fail
with "database is locked". A parallel sweep therefore starts one `mlflow server` on a free
loopback port over the same store and artifact folder, points its jobs at it (http), and
stops it at the end (experiments.sweeps.tracking). The server is the only process
writing to the file; `make ui` afterwards shows the same runs and artifacts. A team's
shared server is the same class, started by `python -m experiments.server`, and so is
`make ui`'s.

Whoever starts it, the server and everything it starts (its uvicorn worker, its job runner
and huey consumers) end with the process that started it: on stop(), on exit, on SIGTERM
or SIGHUP left at their defaults, and, on Linux, when that process is killed outright
(experiments.tracking.process_group).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from experiments.tracking.process_group import (
    die_with_parent,
    end_group,
    exit_on_signals,
    restore_signals,
)

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on now (the OS picks it when binding to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def exposure_warning(host: str, port: int) -> str | None:
    """What to tell whoever serves on `host` when that is not the loopback address: MLflow's
    server has no authentication, so everyone who can reach the port can read, change and
    delete every run. None on the loopback."""
    if host in (LOOPBACK, "localhost", "::1"):
        return None
    where = "every network interface of this machine" if host in WILDCARD_HOSTS else host
    return (f"WARNING: the MLflow server listens on {where}, port {port}, with no "
            "authentication: anyone who can reach it can read, change and delete every run "
            "and artifact. Serve only on a trusted network, or behind a proxy that checks "
            "who connects.")


def reachable_uri(host: str, port: int) -> str:
    """The URI other machines use for a server bound to `host`: for the wildcard address
    (0.0.0.0, which no client can connect to) this machine's name, or else its address."""
    if host in WILDCARD_HOSTS:
        host = _machine_name()
    return f"http://{host}:{port}"


def _machine_name() -> str:
    # getfqdn() may resolve to "localhost" (from /etc/hosts), which no other machine can use.
    for name in (socket.getfqdn(), socket.gethostname()):
        if name and not name.startswith("localhost"):
            return name
    try:  # the address of the interface that routes outwards (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def is_up(uri: str, timeout: float = 2.0) -> bool:
    """Whether an MLflow server answers at `uri` (http://host:port)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for(uri: str, timeout: float = 120.0) -> None:
    """Wait until the server at `uri` answers; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not is_up(uri, timeout=1.0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no MLflow tracking server answered at {uri} within "
                               f"{timeout:.0f} s (a parallel sweep's local server: see "
                               "mlflow_server.log in the sweep's folder)")
        time.sleep(0.3)


class TrackingServer:
    """`mlflow server` in a child process; start() returns its http URI, stop() ends it.

    backend_store_uri: where runs go (sqlite:///..., postgresql://...). artifact_root: the
    folder new experiments keep their artifacts in (clients write there directly, as with
    a local store), or with serve_artifacts=True the folder the server proxies artifact
    uploads to (for clients on other machines). One worker by default: with SQLite the
    server must be the only writer.
    """

    def __init__(self, backend_store_uri: str, artifact_root: str | Path, *,
                 host: str = LOOPBACK, port: int | None = None, workers: int = 1,
                 serve_artifacts: bool = False, log_path: str | Path | None = None,
                 allowed_hosts: str | None = None) -> None:
        self.backend_store_uri = backend_store_uri
        self.artifact_root = Path(artifact_root).resolve()
        self.host, self.port, self.workers = host, port, workers
        self.serve_artifacts = serve_artifacts
        self.allowed_hosts = allowed_hosts  # Host headers accepted beyond localhost/private IPs
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log_file = None
        self._replaced_handlers: dict[int, Any] = {}

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", self.backend_store_uri,
               "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]
        if self.serve_artifacts:
            cmd += ["--serve-artifacts", "--artifacts-destination", str(self.artifact_root)]
        else:
            cmd += ["--no-serve-artifacts", "--default-artifact-root", str(self.artifact_root)]
        if self.allowed_hosts:
            cmd += ["--allowed-hosts", self.allowed_hosts]
        return cmd

    def start(self, timeout: float = 120.0) -> str:
        """Start the server and wait until it answers; return its URI."""
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(f"the MLflow server exited at start (code {code}); "
                                   f"see {self.log_path or 'its output'}")
            if is_up(self.uri, timeout=1.0):
                return self.uri
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the MLflow server did not answer at {self.uri} within {timeout:.0f} s;"
                           f" see {self.log_path or 'its output'}")

    def launch(self) -> str:
        """Start the server's process and return its URI at once, without waiting for it
        to answer (it takes seconds to import MLflow and open the store); `wait_for(uri)`
        waits. A parallel sweep's workers start meanwhile."""
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        out = self._log_file or subprocess.DEVNULL
        env = {**os.environ}
        env.pop("MLFLOW_TRACKING_URI", None)  # the server serves its own store
        # MLflow 3 starts a job runner and seven Huey consumers beside the web server for
        # its server-side GenAI jobs (judges, online scoring), about 220 MB each; runs and
        # artifacts never use them. MLflow's documented switch (mlflow.environment_variables);
        # exporting MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true brings them back.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        # Its own session and process group: Ctrl-C in the terminal reaches the sweep, which
        # then stops the server itself (after the jobs are ended), not both at once; and
        # stop() ends the whole group, the server's own children included.
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True,
                                        preexec_fn=die_with_parent())
        # SIGTERM (kill, make passing it on) and SIGHUP (the terminal closed) would end this
        # process without a word to the server's session; as SystemExit they run stop().
        self._replaced_handlers = exit_on_signals((signal.SIGTERM, signal.SIGHUP))
        atexit.register(self.stop)
        log.info("MLflow tracking server at %s over %s (pid %d)", self.uri,
                 self.backend_store_uri, self.process.pid)
        return self.uri

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server and every process it started (SIGTERM to its process group, then
        SIGKILL to what is left after `timeout` s); safe to call twice."""
        process, self.process = self.process, None
        if process is not None:
            atexit.unregister(self.stop)
            end_group(process, timeout)
            restore_signals(self._replaced_handlers)
            self._replaced_handlers = {}
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def serve_until_interrupted(self) -> None:
        """Block while the started server runs; Ctrl-C, SIGTERM, SIGHUP (or its exit) stop it."""
        try:
            while self.process is not None and self.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> TrackingServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
