"""Job accounting for the test cluster (tests/slurm_cluster.py): a private MariaDB server
and slurmdbd, so that `sacct` answers from a real accounting database. submitit
(hydra/launcher=slurm) reads job states with `sacct -o JobID,State,NodeList --parsable2
-j <id> ...`, as it does on a real cluster.

Everything lives under the cluster's folder: MariaDB's data directory (made by
mariadb-install-db), its socket and pid file, slurmdbd.conf (beside slurm.conf, where
slurmdbd looks for it; mode 600, owned by its SlurmUser, root) and the daemons' logs in
log/. MariaDB listens on its own socket (for the set-up, as MariaDB's root) and on a free
loopback port, which slurmdbd connects to: slurmdbd.conf has no setting for a socket, and
StorageHost=localhost would mean the system's default one. slurmdbd listens on another
free loopback port. MariaDB runs without durability (no doublewrite, no flush at each
commit): the database lives only as long as the test.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

from slurm_daemons import Daemons

DAEMONS = ("mariadbd", "slurmdbd")
CLIENTS = ("mariadb-install-db", "mariadb", "mariadb-admin", "sacct", "sacctmgr")
DATABASE = "slurm_acct_db"
DB_USER = "slurm"
# Small and fast rather than durable: a test's accounting database holds a few jobs
# (slurmdbd logs that the buffer pool and log are below the sizes it recommends). The
# lock wait is the one it asks for.
INNODB = ["--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
          "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
          "--innodb-lock-wait-timeout=900", "--skip-log-bin", "--skip-name-resolve"]


class Accounting:
    """MariaDB and slurmdbd for the cluster whose files are in `folder`."""

    def __init__(self, folder: Path, which: Callable[[str], str | None],
                 db_port: int, dbd_port: int) -> None:
        self.folder = Path(folder)
        self.which = which
        self.data = self.folder / "db"
        self.socket = self.folder / "db.sock"
        self.db_port, self.dbd_port = db_port, dbd_port
        self.password = secrets.token_hex(16)
        self.conf = self.folder / "slurmdbd.conf"

    def slurm_conf(self, munge_socket: Path) -> list[str]:
        """The lines of slurm.conf that send job records to this slurmdbd. Clients and
        slurmctld reach slurmdbd through the munged that AccountingStoragePass names
        (AuthInfo is not used for it: without it they would try the system's munged)."""
        return ["AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.dbd_port}",
                f"AccountingStoragePass={munge_socket}"]

    def write_config(self, munge_socket: Path) -> None:
        self.conf.write_text("\n".join([
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.dbd_port}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge_socket}",
            f"LogFile={self.folder / 'log' / 'slurmdbd.log'}",
            f"PidFile={self.folder / 'slurmdbd.pid'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.db_port}",
            f"StorageUser={DB_USER}",
            f"StoragePass={self.password}",
            f"StorageLoc={DATABASE}",
            "",
        ]))
        # slurmdbd refuses a configuration (it holds the password) others can read.
        self.conf.chmod(0o600)

    def sql(self, statements: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run SQL as MariaDB's root, over its socket (root logs in by its Unix user)."""
        return subprocess.run([self.which("mariadb"), "--no-defaults", f"--socket={self.socket}",
                               "--user=root", "--batch", "--skip-column-names",
                               "--execute", statements],
                              capture_output=True, text=True, timeout=timeout)

    def _pings(self) -> bool:
        try:
            return subprocess.run([self.which("mariadb-admin"), "--no-defaults",
                                   f"--socket={self.socket}", "--user=root", "ping"],
                                  capture_output=True, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self, daemons: Daemons, cluster: str, timeout: float) -> None:
        """Start MariaDB, make the database and its user, start slurmdbd (as children of
        `daemons`, the cluster), register `cluster` with it."""
        log = daemons.log_file("mariadbd")
        install = subprocess.run(
            [self.which("mariadb-install-db"), "--no-defaults", f"--datadir={self.data}",
             "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db",
             *INNODB], capture_output=True, text=True, timeout=timeout)
        if install.returncode != 0:
            log.write_text(install.stdout + install.stderr)
            raise RuntimeError(f"mariadb-install-db failed (code {install.returncode}); "
                               f"its output is in {log}:\n{install.stdout}{install.stderr}")
        daemons.spawn("mariadbd", [self.which("mariadbd"), "--no-defaults", "--user=root",
                           f"--datadir={self.data}", f"--socket={self.socket}",
                           f"--pid-file={self.folder / 'mariadbd.pid'}",
                           f"--log-error={log}", "--bind-address=127.0.0.1",
                           f"--port={self.db_port}", *INNODB])
        daemons.wait(self._pings, timeout, "mariadbd", "MariaDB to answer on its socket")
        user = f"'{DB_USER}'@'127.0.0.1'"
        done = self.sql(f"CREATE DATABASE {DATABASE}; "
                        f"CREATE USER {user} IDENTIFIED BY '{self.password}'; "
                        f"GRANT ALL ON {DATABASE}.* TO {user};")
        if done.returncode != 0:
            raise RuntimeError(f"mariadbd: could not create {DATABASE} and its user "
                               f"(log: {log}): {done.stdout}{done.stderr}")
        daemons.spawn("slurmdbd", [self.which("slurmdbd"), "-D"])
        # sacctmgr answers once slurmdbd has made its tables and listens.
        daemons.wait(lambda: self._sacctmgr_ok(daemons), timeout, "slurmdbd",
             "slurmdbd to answer sacctmgr")
        # No AccountingStorageEnforce: root's association, which adding a cluster makes,
        # is all the jobs need.
        daemons.run("sacctmgr", "-i", "add", "cluster", cluster)

    @staticmethod
    def _sacctmgr_ok(daemons: Daemons) -> bool:
        try:
            daemons.run("sacctmgr", "-n", "-P", "list", "cluster", timeout=20)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
