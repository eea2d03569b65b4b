"""A one-node SLURM cluster in a temporary folder, for tests of hydra/launcher=slurm.

    cluster = SlurmCluster(folder)     # folder: a fresh directory
    cluster.start()                    # munged, MariaDB, slurmdbd, slurmctld and slurmd
    subprocess.run(["sbatch", ...], env=cluster.env)   # clients talk to this cluster only
    cluster.stop()                     # cancels what is left, stops the daemons

Everything lives in `folder`: slurm.conf, slurmdbd.conf, a generated munge key, munged's
socket, MariaDB's data directory and socket, the daemons' state, spool and logs (log/).
The daemons listen on free loopback ports. Nothing is read from or written to /etc/slurm,
/etc/munge or /etc/mysql, so it runs beside any real SLURM or MariaDB set-up on the
machine. It needs Debian's slurm-wlm, munge, slurmdbd and mariadb-server packages (SLURM
22.05) and root: slurmd runs jobs as their submitting user, which takes root's rights.

Accounting is real (tests/slurm_accounting.py): slurmctld sends job records to slurmdbd,
which keeps them in the cluster's own MariaDB, and `sacct` reads them from slurmdbd, as
submitit (hydra/launcher=slurm) does to learn the state of a job that ended without
writing its result, e.g. one cancelled or killed before it could.

    sudo .venv/bin/python tests/slurm_cluster.py up    # a cluster to try sweeps on, until Ctrl-C
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# Beside this file: on sys.path under pytest and when this file is run as a script.
import slurm_accounting as accounting
from slurm_daemons import Daemons

DAEMONS = ("munged", "slurmctld", "slurmd", *accounting.DAEMONS)
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", *accounting.CLIENTS)
# Stopped in this order: slurmd ends its job steps, slurmctld sends its last job records
# to slurmdbd, which writes them to MariaDB; munged, which the SLURM daemons use, last.
STOP_ORDER = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")
PARTITION = "lab"
CLUSTER = "testlab"  # ClusterName, as slurmdbd registers it
# Seconds between SIGTERM and SIGKILL when SLURM ends a job (scancel, time limit): long
# enough for a job to end its MLflow run, short enough that a test does not wait long.
KILL_WAIT_S = 8


def missing_binaries() -> list[str]:
    """The SLURM, munge and MariaDB programs this cluster needs that are not installed."""
    found = {name: _which(name) for name in (*DAEMONS, *CLIENTS)}
    return [name for name, path in found.items() if path is None]


def _which(name: str) -> str | None:
    # Debian installs the daemons in /usr/sbin, which a non-login PATH may not list.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class SlurmJob:
    """One job as slurmctld reports it (`scontrol show job`)."""

    job_id: str      # as submitit names it: "12_0" for task 0 of array job 12, else "12"
    slurm_id: str    # the job's own id (an array task has one too)
    state: str       # PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, FAILED, ...
    node: str        # the node it ran on ("" while pending)
    reason: str      # why it is pending or how it ended (None, TimeLimit, ...)


def parse_jobs(text: str) -> list[SlurmJob]:
    """The jobs in `scontrol show job --oneliner` output (one line per job)."""
    jobs = []
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))
        if "JobId" not in fields:
            continue
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array and task:
            # A pending range ("1-2", "3,5") is one record; submitit reads "12_[1-2]".
            job_id = f"{array}_[{task}]" if re.search(r"[-,%]", task) else f"{array}_{task}"
        else:
            job_id = fields["JobId"]
        node = fields.get("NodeList", "")
        jobs.append(SlurmJob(job_id=job_id, slurm_id=fields["JobId"],
                             state=fields.get("JobState", "UNKNOWN"),
                             node="" if node == "(null)" else node,
                             reason=fields.get("Reason", "")))
    return jobs


class SlurmCluster(Daemons):
    """A private one-node SLURM cluster (munged, MariaDB, slurmdbd, slurmctld, slurmd)
    under `folder`; `run` runs a client (sbatch, squeue, sacct, ...) against it."""

    def __init__(self, folder: Path, partition: str = PARTITION) -> None:
        self.conf = Path(folder) / "slurm.conf"
        super().__init__(folder, self._client_env())
        self.partition = partition
        self.node = socket.gethostname()  # what slurmd reports as its node name
        self.accounting = accounting.Accounting(self.folder, _which, _free_port(),
                                                _free_port())

    # -- set-up ------------------------------------------------------------------------

    def _client_env(self) -> dict[str, str]:
        """The environment of daemons, clients and jobs: this cluster's slurm.conf (and
        so its slurmdbd.conf, beside it), no SLURM_* variables of an outer job."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), "/usr/sbin", "/sbin"])
        return env

    def _node_line(self) -> str:
        """The node as slurmd will report it: this host at 127.0.0.1, with the CPUs this
        process may use (nproc) and the memory slurmd measures (jobs ask for --mem)."""
        cpus = len(os.sched_getaffinity(0))
        probe = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True,
                               timeout=60)
        memory = re.search(r"RealMemory=(\d+)", probe.stdout)
        real_memory = f" RealMemory={memory.group(1)}" if memory else ""
        return (f"NodeName={self.node} NodeHostname={self.node} NodeAddr=127.0.0.1 "
                f"CPUs={cpus}{real_memory} State=UNKNOWN")

    def write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses a socket in a folder others cannot traverse (mkdtemp gives 0700).
        os.chmod(f, 0o755)
        # A fresh key for this cluster only: munged rejects keys that others can read.
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.conf.write_text("\n".join([
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={f / 'munge' / 'munge.sock'}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log_file('slurmctld')}",
            f"SlurmdLogFile={self.log_file('slurmd')}",
            # No cgroups in a container or a CI runner: track job processes by parentage.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            # Job records go to slurmdbd (sacct); slurmctld keeps its own for MinJobAge
            # seconds after a job ends (scontrol show job, `jobs` below).
            *self.accounting.slurm_conf(f / "munge" / "munge.sock"),
            "MinJobAge=600",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            f"KillWait={KILL_WAIT_S}",
            "ReturnToService=2",
            self._node_line(),
            f"PartitionName={self.partition} Nodes={self.node} Default=YES "
            "MaxTime=INFINITE State=UP",
            "",
        ]))
        self.accounting.write_config(f / "munge" / "munge.sock")

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration, start the daemons, wait until the node takes jobs.
        On failure the daemons started so far keep running: stop() ends them."""
        self.write_config()
        munge = self.folder / "munge"
        # All in the foreground, as our children: stop() ends exactly these.
        self.spawn("munged", [_which("munged"), "--foreground", "--force",
                               f"--key-file={munge / 'munge.key'}",
                               f"--socket={munge / 'munge.sock'}",
                               f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={self.log_file('munged')}",
                               f"--seed-file={munge / 'munged.seed'}"])
        self.wait(lambda: (munge / "munge.sock").exists(), 20, "munged", "its socket")
        # slurmctld registers with slurmdbd as it starts: accounting first.
        self.accounting.start(self, CLUSTER, timeout)
        self.spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
        self.wait(lambda: self.scontrol_ok("ping"), timeout, "slurmctld",
                   "slurmctld to answer scontrol ping")
        self.spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
        self.wait(lambda: self.node_state() in ("IDLE", "MIXED", "ALLOCATED"), timeout,
                   "slurmd", "the node to register with slurmctld as idle")

    # -- clients -----------------------------------------------------------------------

    def scontrol_ok(self, *args: str) -> bool:
        try:
            return subprocess.run(["scontrol", *args], env=self.env, capture_output=True,
                                  timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def node_state(self) -> str:
        out = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False)
        return out.strip().rstrip("*~#").upper()

    def jobs(self, job_ids: Iterable[str] = ()) -> list[SlurmJob]:
        """Jobs slurmctld knows (running, pending, or ended less than MinJobAge ago);
        `job_ids` (e.g. an array job's id) narrows it down."""
        ids = list(job_ids)
        if not ids:
            return parse_jobs(self.run("scontrol", "show", "job", "--oneliner", check=False))
        jobs = []
        for job_id in ids:
            out = self.run("scontrol", "show", "job", "--oneliner", str(job_id), check=False)
            jobs += parse_jobs(out)
        return jobs

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it holds (the daemons must stay up meanwhile)."""
        self.wait(ready, timeout, "slurmctld", what)

    # -- tear-down ---------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel every job left, let the node clean them up, stop the daemons."""
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            self.run("scancel", f"--partition={self.partition}", check=False)
            deadline = time.monotonic() + KILL_WAIT_S + 20
            while time.monotonic() < deadline and any(
                    j.state in ("RUNNING", "PENDING", "COMPLETING") for j in self.jobs()):
                time.sleep(0.5)
        self.stop_daemons(STOP_ORDER)


def temporary_folder() -> Path:
    """A fresh folder for a cluster: short (munged's socket path has a length limit) and
    outside pytest's private temporary tree, whose parents others cannot traverse."""
    return Path(tempfile.mkdtemp(prefix="slurm-"))


def serve() -> int:
    """`python tests/slurm_cluster.py up`: a cluster to try hydra/launcher=slurm by hand;
    prints the variables a shell needs to use it, runs until Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Stop cleanly on Ctrl-C and on SIGTERM, also when started in the background (where a
    # shell leaves SIGINT ignored): the daemons must not outlive this process.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    cluster = SlurmCluster(temporary_folder())
    try:
        cluster.start()
        print(f"SLURM cluster in {cluster.folder}: partition {cluster.partition}, node "
              f"{cluster.node}. In another shell:\n"
              f"  export SLURM_CONF={cluster.conf}\n"
              "Ctrl-C stops it.", flush=True)
        while all(p.poll() is None for p in cluster.processes.values()):
            time.sleep(1)
        print(f"a daemon exited:\n{cluster.logs()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["up"]:
        sys.exit(serve())
    sys.exit(f"usage: {sys.argv[0]} up")
