"""An unwritable store fails before training with a message naming the path, and leaves
the store's other runs alone."""

import os
import tempfile

import pytest

from experiments.tracking import store

QUICK = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
         "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
         "trainer.epochs=1", "trainer.batch_size=50", "trainer.layer_stats=false"]


def test_a_file_in_the_way_is_named(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(store.StoreNotWritableError, match="database .*blocker/mlflow.db"):
        store.check_store_writable(f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(store.StoreNotWritableError, match="artifact folder .*blocker/art"):
        store.check_store_writable(f"sqlite:///{tmp_path}/mlflow.db",
                                      f"file://{blocker}/art")


def test_a_read_only_folder_is_named(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(store.StoreNotWritableError,
                       match=f"database {tmp_path}/db/mlflow.db is not writable "
                             f"\\(Read-only file system"):
        store.check_store_writable(f"sqlite:///{tmp_path}/db/mlflow.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_permissions_are_checked(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(store.StoreNotWritableError, match="ro/mlflow.db"):
        store.check_store_writable(f"sqlite:///{folder}/mlflow.db")


def test_writable_and_remote_stores_pass(tmp_path):
    store.check_store_writable(f"sqlite:///{tmp_path}/new/mlflow.db", str(tmp_path / "a"))
    store.check_store_writable("http://127.0.0.1:1", "mlflow-artifacts:/0")
    store.check_store_writable("http://127.0.0.1:1", "s3://bucket/artifacts")
    store.check_store_writable(f"sqlite:///{tmp_path}/db2.db", "mlflow-artifacts:/0")
    assert not list(tmp_path.parent.glob(".write-probe-*"))
    assert not list(tmp_path.iterdir())  # the probes leave nothing behind


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_training_refuses_an_unwritable_artifact_folder(harness_cli):
    cli = harness_cli
    done = cli.run("experiments.train", *QUICK, "tracking.run_name=kept")
    assert done.returncode == 0, done.stderr
    blocker = cli.folder / "blocker"
    blocker.write_text("")
    client = cli.client()
    client.create_experiment("elsewhere", artifact_location=f"file://{blocker}/artifacts")

    done = cli.run("experiments.train", *QUICK, "tracking.experiment=elsewhere")
    assert done.returncode != 0
    assert f"artifact folder {blocker}/artifacts is not writable" in done.stderr
    assert "Nothing was trained" in done.stderr
    elsewhere = client.get_experiment_by_name("elsewhere")
    assert client.search_runs([elsewhere.experiment_id]) == []  # no run was started
    [kept] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert kept.info.status == "FINISHED" and "test_acc" in kept.data.metrics


def test_a_corrupt_store_file_is_named_and_an_empty_one_said(tmp_path, caplog, monkeypatch):
    # issue 27: a corrupt mlflow.db gave 80 lines of SQLAlchemy naming no file, and a
    # zero-byte one was silently made a new store.
    import logging

    from experiments.tracking.store import StoreError, connect

    monkeypatch.setattr(store.log, "disabled", False)  # an earlier logging config may have
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=f"{db} is not an SQLite database"):
        connect(f"sqlite:///{db}")
    db.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        connect(f"sqlite:///{db}")
    assert any(f"{db} is empty (0 bytes)" in r.getMessage() for r in caplog.records)


@pytest.mark.data
@pytest.mark.mlflow
def test_train_on_a_corrupt_store_says_so_in_one_line(harness_cli):
    # issue 27: `python -m experiments.train` still printed Hydra's short traceback, and a
    # sweep started its jobs anyway, each failing with one, and exited 0.
    cli = harness_cli
    db = cli.folder / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    named = f"{db} is not an SQLite database (corrupt, or another kind of file): move it aside"

    done = cli.run("experiments.train", *QUICK)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {named}, or give another store with --tracking-uri (train: tracking.uri=) "
        "or MLFLOW_TRACKING_URI"]
    done = cli.run("experiments.train", "-m", *QUICK, "optim.lr=0.01,0.02")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert f"the sweep did not start: StoreError: {named}" in done.stderr
    assert db.read_bytes() == b"this is not a database" * 100  # never written
