"""tracking=server against a real team set-up: PostgreSQL (Debian's package, installed by
.ci/run) behind `mlflow server` on loopback, and a small parallel sweep logging to it.

Without PostgreSQL the test skips, except under CI (CI=true), where it fails: CI must
exercise it.
"""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

# postgres_url and postgres_server (PostgreSQL behind `mlflow server`) are in
# fixtures/tracking_server.py.
TINY = ["model=seed", "data.n_train=100", "data.n_val=50", "trainer.epochs=2",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
        "tracking.log_model=false", "tracking.log_dataset=false"]
EPOCH_METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]


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
