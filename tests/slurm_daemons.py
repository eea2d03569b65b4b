"""The daemons of the test SLURM cluster (tests/slurm_cluster.py) as children of the test:
each runs in the foreground in a session of its own, logs to <folder>/log, is waited for
with a bounded wait that names it and its log when it fails, and is stopped by stop()
(SIGTERM, then SIGKILL), so that none outlives the test.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path


class Daemons:
    """Processes started under `folder` with environment `env`."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = Path(folder)
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}

    def log_file(self, daemon: str) -> Path:
        """Where `daemon` logs (its stdout and stderr go to log/<daemon>.out beside it)."""
        return self.folder / "log" / f"{daemon}.log"

    def spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "ab")  # noqa: SIM115 (child owns it)
        with log:
            self.processes[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                    env=self.env, start_new_session=True)

    def wait(self, ready: Callable[[], bool], timeout: float, daemon: str,
             what: str) -> None:
        """Poll `ready` for up to `timeout` s; fail, naming `daemon` and its log, if it
        does not hold by then, or naming the one that exited if any exits meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited (code {process.returncode}) while waiting for "
                        f"{what}; its log: {self.log_file(name)}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{daemon}: timed out after {timeout:.0f} s waiting for {what}; "
                           f"its log: {self.log_file(daemon)}\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        """The end of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        """Run a client command (sbatch, sacctmgr, ...) with `env`; its stdout."""
        done = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)}: {done.stdout}{done.stderr}")
        return done.stdout

    def stop_daemons(self, order: Iterable[str]) -> None:
        """Stop the daemons in `order`, then any other still running."""
        for name in [*order, *self.processes]:
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
