"""rerun and report on what is not there, or not as it was (issue 27): a missing id is one
line, a clean run rerun from changed code is pointed at the new run's patch, and a deleted
source run is rerun with a notice."""

from __future__ import annotations

import logging

import mlflow
import pytest
from omegaconf import OmegaConf

from experiments import report
from experiments import rerun as rerun_command
from experiments.config import compose_config
from experiments.runs import logged, rerun
from experiments.runs.tracked import Outcome
from experiments.tracking import tags

PATCH = "diff --git a/cnn/optim.py b/cnn/optim.py\n--- a/cnn/optim.py\n+++ b/cnn/optim.py\n" \
        "@@ -1 +1 @@\n-a\n+b\n"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.mark.parametrize("command", ["rerun", "report"])
def test_a_missing_run_id_is_one_line(store, command, capsys):
    with pytest.raises(SystemExit) as info:
        if command == "rerun":
            rerun_command.main(["0123456789abcdef"])
        else:
            report.main(["--parent", "0123456789abcdef", "--no-log"])
    err = capsys.readouterr().err + (info.value.code if isinstance(info.value.code, str) else "")
    assert info.value.code not in (0, None)
    assert f"no run 0123456789abcdef in {store}" in err
    assert "Traceback" not in err


def test_a_clean_run_rerun_from_changed_code_points_at_the_new_runs_patch(monkeypatch):
    monkeypatch.setattr(logged, "git_state", lambda: ("abc", True, PATCH))
    monkeypatch.setattr(logged, "machine_warnings", lambda run_tags: [])
    clean = {tags.GIT_COMMIT: "abc", tags.GIT_DIRTY: tags.flag(False), tags.DATA_DIGEST: "d"}
    [warning] = logged.provenance_warnings("r", clean, "d", new_run=True)
    assert warning == ("the run had no uncommitted changes; this code has some, in "
                       "cnn/optim.py (changed now, not in the run) (the new run's "
                       "git_diff.patch holds them)")
    [warning] = logged.provenance_warnings("r", clean, "d")  # resume: the same run
    assert "its git_diff.patch" not in warning and "new run" not in warning


def test_a_deleted_source_run_reruns_with_a_notice(store, monkeypatch, caplog):
    cfg = compose_config(["data=digits", "data.n_train=20", "trainer.epochs=1"])
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("rerun-notices")  # not an experiment id another test's store left
    with mlflow.start_run() as source:
        mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    mlflow.MlflowClient().delete_run(source.info.run_id)
    trained = []

    def train_and_log(cfg, **kwargs):
        with mlflow.start_run(run_name=kwargs["run_name"], tags=kwargs["extra_tags"]) as run:
            trained.append(run.info.run_id)
        return Outcome(run_id=run.info.run_id)

    monkeypatch.setattr(rerun, "train_and_log", train_and_log)
    monkeypatch.setattr(rerun.log, "disabled", False)  # an earlier logging config may have
    with caplog.at_level(logging.WARNING):
        new_id, _ = rerun.rerun(source.info.run_id)
    assert trained == [new_id]
    assert any(f"run {source.info.run_id} is deleted" in r.getMessage() for r in caplog.records)
