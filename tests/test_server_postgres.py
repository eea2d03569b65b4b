"""tracking=server against a real team set-up: PostgreSQL (Debian's package, installed by
.ci/run) behind `mlflow server` on loopback, and a small parallel sweep logging to it.

Without PostgreSQL the test skips, except under CI (CI=true), where it fails: CI must
exercise it.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from experiments.tracking.server import TrackingServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "data.n_train=100", "data.n_val=50", "trainer.epochs=2",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
        "tracking.log_model=false", "tracking.log_dataset=false"]
EPOCH_METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL cluster on a free loopback port; yields its database URL."""
    pg_bin = postgres_bin()
    if pg_bin is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    try:
        import psycopg2
    except ImportError:
        unavailable("psycopg2 is not installed (pip install -e '.[dev]')")
    # PostgreSQL refuses to run as root: as root, run it as the `postgres` user, in a
    # folder that user owns (pytest's own temporary folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root without runuser to drop to the postgres user")
        try:
            shutil.chown(base, "postgres", "postgres")
        except (LookupError, OSError) as e:
            unavailable(f"cannot give the cluster folder to the postgres user: {e}")
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
    """`mlflow server` over the PostgreSQL database, proxying artifacts to a local folder."""
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


def test_sweep_logs_every_run_and_metric_to_a_postgres_backed_server(
        postgres_server, postgres_url, harness_cli):
    import mlflow
    import psycopg2

    uri = postgres_server.uri
    done = harness_cli.run("experiments.train", "-m", *TINY, "init=he,xavier",
                           "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                           "tracking=server", f"tracking.uri={uri}",
                           f"hydra.sweep.dir={harness_cli.folder / 'multirun'}", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "local MLflow server" not in output  # a remote server needs no local one
    assert not (harness_cli.folder / "mlflow.db").exists()  # nothing went to SQLite

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "sweep_dir" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["jobs"] == "2 runs: 2 FINISHED"
    children = {r.data.params["init.name"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["he", "xavier"]
    for init, child in children.items():
        assert child.info.status == "FINISHED", init
        assert child.data.params["data.n_train"] == "100"
        for key in EPOCH_METRICS:
            history = client.get_metric_history(child.info.run_id, key)
            assert sorted(m.step for m in history) == [1, 2], (init, key)
        assert {"test_loss", "test_acc"} <= set(child.data.metrics)
        # Artifacts went up through the server.
        assert "weights.npz" in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert "summary.md" in {a.path.split("/")[-1]
                            for a in client.list_artifacts(parent.info.run_id, "report")}

    # And it is all in PostgreSQL itself.
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'")
        assert cursor.fetchone()[0] == 3
        cursor.execute("SELECT count(DISTINCT run_uuid) FROM metrics WHERE key = 'train_loss'")
        assert cursor.fetchone()[0] == 2
