"""Shared pytest fixtures. Each block belongs to one part of the project; add new blocks."""

import glob
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

# ---------------------------------------------------------------------------------------
# Data fixtures (cnn.data; used by tests/test_data_*.py).
#
# Real CIFAR-10 comes from $CIFAR10_ROOT. If it is set but unusable the tests FAIL, so a
# misconfigured CI cannot pass by skipping. Unset, ../shared/data beside the repository
# is used if present, else the tests that need real images skip.
# ---------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _shared_data_as_default_root():
    """With CIFAR10_ROOT unset, point it at ../shared/data for the session (when that exists),
    so code that resolves the root itself (configs with data.root unset) finds the same data
    as the fixtures below. A set variable is never changed."""
    if os.environ.get("CIFAR10_ROOT") or not (SHARED_DATA / "cifar-10-batches-py").is_dir():
        yield
        return
    os.environ["CIFAR10_ROOT"] = str(SHARED_DATA)
    try:
        yield
    finally:
        del os.environ["CIFAR10_ROOT"]


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """The folder holding real CIFAR-10 (validated by loading it once)."""
    from cnn.data import load_cifar10  # imported here so collection never needs the data

    env = os.environ.get("CIFAR10_ROOT")
    if env:
        root, origin = Path(env), f"CIFAR10_ROOT={env}"
    elif (SHARED_DATA / "cifar-10-batches-py").is_dir():
        root, origin = SHARED_DATA, f"the fallback {SHARED_DATA}"
    else:
        pytest.skip(f"no CIFAR-10: CIFAR10_ROOT is unset and {SHARED_DATA} does not exist")
    try:
        load_cifar10(root)
    except Exception as e:
        pytest.fail(f"{origin} is set but CIFAR-10 cannot be loaded from it: {e}", pytrace=False)
    return root


@pytest.fixture(scope="session")
def cifar10(cifar_root: Path):
    """The real dataset, loaded once per session (cnn.data.Cifar10)."""
    from cnn.data import load_cifar10

    return load_cifar10(cifar_root)


@pytest.fixture(scope="session")
def cifar_folder(cifar10) -> Path:
    """The cifar-10-batches-py folder the real data is read from."""
    return cifar10.source


@pytest.fixture(scope="session")
def cifar_archive(cifar_root: Path, cifar_folder: Path, tmp_path_factory) -> Path:
    """A cifar-10-python.tar.gz of the real data: the root's own, else packed from the folder."""
    archive = cifar_root / "cifar-10-python.tar.gz"
    if archive.is_file():
        return archive
    archive = tmp_path_factory.mktemp("cifar_archive") / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(cifar_folder, arcname="cifar-10-batches-py")
    return archive


# ---------------------------------------------------------------------------------------
# End of data fixtures.
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# MLflow's process-wide tracking URI (every test).
#
# mlflow.set_tracking_uri in a test's own process sets a module global and the
# MLFLOW_TRACKING_URI variable, which later tests would inherit; each test starts clean.
# ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leftover_tracking_uri():
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    import sys

    if "mlflow" in sys.modules:  # only a test that imported MLflow can have set it
        sys.modules["mlflow"].set_tracking_uri(None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


# ---------------------------------------------------------------------------------------
# Harness fixtures (experiments/; used by tests/test_harness_*.py).
#
# The harness is tested end to end: `python -m experiments.<module>` runs in a subprocess
# inside a temporary folder with its own SQLite MLflow store, so Hydra's output folders,
# MLflow's global state and signals never touch the test process or the repository.
# ---------------------------------------------------------------------------------------


class HarnessCli:
    """Runs harness commands in `folder` against the store `folder`/mlflow.db."""

    def __init__(self, folder: Path, cifar_root: Path) -> None:
        self.folder = folder
        self.tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "CIFAR10_ROOT": str(cifar_root),
            # This checkout's code, whatever the venv's editable install points at, and
            # tests/ for the faults the tests inject (tests/faults.py).
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), str(REPO_ROOT / "tests"),
                                                        os.environ.get("PYTHONPATH")])),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }

    def command(self, module: str, *args: str) -> list[str]:
        import sys

        return [sys.executable, "-m", module, *args]

    def run(self, module: str, *args: str, timeout: float = 300):
        """Run to completion; returns the CompletedProcess (output captured as text)."""
        import subprocess

        return subprocess.run(self.command(module, *args), cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, module: str, *args: str):
        """Start in the background (for signal tests); returns the Popen."""
        import signal
        import subprocess

        # Create the store's tables now: if the test polled the store while the child was
        # still creating them, both would try to and one would fail.
        self.client().search_experiments()

        def default_sigint() -> None:
            # A shell that starts jobs in the background may have set SIGINT to ignored,
            # and Python keeps that; restore it so the test's SIGINT acts like Ctrl-C.
            # Likewise SIGHUP, which a suite started under nohup ignores (and the harness
            # then rightly keeps ignoring).
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)

        return subprocess.Popen(self.command(module, *args), cwd=self.folder, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=default_sigint)

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)


@pytest.fixture
def harness_cli(cifar_root: Path, tmp_path: Path) -> HarnessCli:
    """A HarnessCli in a fresh temporary folder."""
    return HarnessCli(tmp_path, cifar_root)


@pytest.fixture(scope="module")
def module_harness_cli(cifar_root: Path, tmp_path_factory) -> HarnessCli:
    """A HarnessCli shared by one test module (e.g. one sweep that several tests inspect)."""
    return HarnessCli(tmp_path_factory.mktemp("harness"), cifar_root)


# ---------------------------------------------------------------------------------------
# End of harness fixtures.
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Digits run fixtures (tests/test_datasets_digits.py, tests/test_predict_*.py).
#
# One short training on scikit-learn's digits through `python -m experiments.train`,
# shared by the tests of its accuracy, of the predict CLI and of the model server. It
# needs no download, so it runs wherever the project is installed.
# ---------------------------------------------------------------------------------------

# 4 epochs of the seed network: 95.8% test accuracy, about a minute on a busy 2-core
# machine (the health checks, tested elsewhere, would add 15 s).
DIGITS_RUN = ["data=digits", "model=seed", "schedule=cosine", "trainer.epochs=4",
              "trainer.batch_size=32", "trainer.progress=false", "trainer.health_checks=false",
              "tracking.experiment=digits"]


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """The finished digits run: .cli (a HarnessCli on its store), .run (the MLflow run)."""
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("digits_run")
    # Digits read no CIFAR-10; the root only fills the variable HarnessCli sets.
    cli = HarnessCli(folder, cifar_root=folder / "no-cifar10")
    done = cli.run("experiments.train", *DIGITS_RUN, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    client = cli.client()
    runs = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED", runs
    return SimpleNamespace(cli=cli, run=runs[0], output=done.stdout + done.stderr)


# ---------------------------------------------------------------------------------------
# End of digits run fixtures.
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Team tracking server fixtures (tests/test_server_postgres.py, tests/test_slurm_cluster.py).
#
# A real PostgreSQL (Debian's package, installed by .ci/run) behind `mlflow server` on
# loopback, as a team would run it. Module-scoped: each module that uses them gets its
# own database and server. Without PostgreSQL the tests skip, except under CI (CI=true),
# where they fail: CI must exercise them.
# ---------------------------------------------------------------------------------------


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip a test whose external service is missing; under CI, fail it instead."""
    if under_ci():
        pytest.fail(f"{what} test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL cluster on a free loopback port; yields its database URL."""
    from experiments.tracking.server import free_port

    pg_bin = postgres_bin()
    if pg_bin is None:
        unavailable("PostgreSQL",
                    "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    try:
        import psycopg2
    except ImportError:
        unavailable("PostgreSQL", "psycopg2 is not installed (pip install -e '.[dev]')")
    # PostgreSQL refuses to run as root: as root, run it as the `postgres` user, in a
    # folder that user owns (pytest's own temporary folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("PostgreSQL", "running as root without runuser to drop to the "
                                      "postgres user")
        try:
            shutil.chown(base, "postgres", "postgres")
        except (LookupError, OSError) as e:
            unavailable("PostgreSQL", f"cannot give the cluster folder to the postgres user: {e}")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"

    started = False
    try:
        run(str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlflow",
            "-E", "UTF8", "--no-sync")
        run(str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"),
            "-w", "-t", "120", "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        started = True
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="mlflow",
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
        connection.close()
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        if started:
            subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_server(postgres_url, tmp_path_factory):
    """`mlflow server` over the PostgreSQL database, proxying artifacts to a local folder
    (as for clients on other machines)."""
    from experiments.tracking.server import TrackingServer

    folder = tmp_path_factory.mktemp("mlflow-server")
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver installed.
    store = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    server = TrackingServer(store, folder / "artifacts", serve_artifacts=True,
                            log_path=folder / "server.log")
    try:
        server.start(timeout=240)
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# End of team tracking server fixtures.
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# SLURM cluster fixtures (tests/test_slurm_cluster.py).
#
# A one-node SLURM cluster in a temporary folder (tests/slurm_cluster.py): its own
# slurm.conf, munge key and socket, MariaDB and slurmdbd for accounting, daemons on free
# loopback ports. It needs Debian's slurm-wlm, munge, slurmdbd and mariadb-server
# (installed by .ci/run) and root. Without them the tests skip, except under CI, where
# they fail.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running SlurmCluster; its `env` points clients (and submitit) at it."""
    from slurm_cluster import SlurmCluster, missing_binaries, temporary_folder

    missing = missing_binaries()
    if missing:
        unavailable("SLURM", f"{', '.join(missing)} not installed "
                             "(apt-get install slurm-wlm munge slurmdbd "
                             "mariadb-server; .ci/run does)")
    if os.geteuid() != 0:
        unavailable("SLURM", "the test cluster's slurmd must run as root to run jobs")
    cluster = SlurmCluster(temporary_folder())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# End of SLURM cluster fixtures.
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Browser fixtures (tests/test_ui.py).
#
# Debian's chromium (installed by .ci/run), headless, renders MLflow's UI as a person
# would see it: the page's text after its scripts ran. Without chromium the tests skip,
# except under CI, where they fail.
# ---------------------------------------------------------------------------------------

# What a root user in a container with no network needs: no sandbox (root), no GPU, and
# none of the background requests a closed network makes fail or hang.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def page_text(dom: str) -> str:
    """The text a page shows: its DOM without scripts, styles and tags, one item a line."""
    import html
    import re

    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", "", dom, flags=re.S | re.I)
    lines = (line.strip() for line in html.unescape(re.sub(r"<[^>]+>", "\n", dom)).splitlines())
    return "\n".join(line for line in lines if line)


@pytest.fixture(scope="session")
def browser():
    """render(url) -> the text the page shows once its scripts have run (virtual time)."""
    binary = shutil.which("chromium")
    if binary is None:
        unavailable("Browser", "chromium is not installed (apt-get install chromium; .ci/run does)")

    def render(url: str, budget_ms: int = 20000, timeout: float = 180) -> str:
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            done = subprocess.run(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0 and done.stdout, done.stderr[-3000:]
        return page_text(done.stdout)

    return render


# ---------------------------------------------------------------------------------------
# End of browser fixtures.
# ---------------------------------------------------------------------------------------
