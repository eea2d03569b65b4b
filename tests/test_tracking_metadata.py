"""Logging metadata (a dataset, a tag) never fails the training: the jobs of a parallel
sweep that log the same test set at once lose the store's check-then-insert race with
`UNIQUE constraint failed`, and must retry and train on."""

import pytest

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

RACE = ("UNIQUE constraint failed: datasets.experiment_id, datasets.name, "
        "datasets.digest")


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)  # checkpoints/ and the artifact folder land here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run("KILLED")


def test_a_lost_dataset_race_is_retried_and_training_goes_on(store, monkeypatch):
    import mlflow
    from mlflow.exceptions import RestException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from experiments.config import compose_config
    from experiments.runs.tracked import train_and_log

    real = SqlAlchemyStore.log_inputs
    calls = []

    def lose_the_race_once(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 1:  # the first dataset, as a job that lost the race sees it
            raise RestException({"error_code": "INTERNAL_ERROR",
                                 "message": f"(sqlite3.IntegrityError) {RACE}"})
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "log_inputs", lose_the_race_once)
    cfg = compose_config(["data=digits", "data.n_train=200", "trainer.epochs=1",
                          "trainer.progress=false", "trainer.health_checks=false",
                          "trainer.checkpoint_every=0", "tracking.log_model=false",
                          f"tracking.uri={store}"])
    outcome = train_and_log(cfg)

    run = mlflow.MlflowClient(store).get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert "test_acc" in run.data.metrics
    # The failed call was tried again: every split's dataset is on the run.
    names = sorted(d.dataset.name for d in run.inputs.dataset_inputs)
    assert names == ["digits-test", "digits-train"]
    assert len(calls) == 3


def test_metadata_that_cannot_be_logged_is_given_up(caplog, monkeypatch):
    from experiments.tracking import metadata

    monkeypatch.setattr(metadata, "BACKOFF_S", 0.0)
    attempts = []

    def always_fails(*args):
        attempts.append(args)
        raise RuntimeError(RACE)

    assert metadata.log_safely("the test dataset", always_fails, 1) is False
    assert len(attempts) == metadata.ATTEMPTS
    assert "could not log the test dataset" in caplog.text
