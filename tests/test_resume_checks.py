"""Resuming from a tampered checkpoint (issue 27): every copy is checked against the
rebuilt run before the run is touched (shapes, optimiser and generator states, finite
numbers, an epoch the run logged); a bad local copy gives way to the artifact, and when
both are bad the run keeps its status and the error names both copies."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest

from cnn import checkpoint as ckpt
from experiments.config import compose_config
from experiments.runs import checkpoints
from experiments.runs.checkpoints import ResumeError, checkpoint_path
from experiments.runs.resume import resume
from experiments.runs.tracked import train_and_log

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]  # trains 3 epochs of 2 steps, in-process


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A tiny digits run stopped (Ctrl-C) after epoch 1 of 3: (folder, run id, the good
    checkpoint's bytes)."""
    folder = tmp_path_factory.mktemp("resume_checks")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        cfg = compose_config([
            "data=digits", "data.n_train=64", "trainer.epochs=3", "trainer.batch_size=32",
            "trainer.progress=false", "trainer.health_checks=false", "tracking.log_model=false",
            "tracking.log_dataset=false", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
            "+callbacks.fault._target_=faults.InterruptAfterEpoch", "+callbacks.fault.epoch=1"])
        with pytest.raises(KeyboardInterrupt):
            train_and_log(cfg)
        (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
        run_id = run.info.run_id
        assert run.info.status == "KILLED"
        good = checkpoint_path(run_id).read_bytes()
    mlflow.set_tracking_uri(None)
    return folder, run_id, good


def _damaged(good: Path, out: Path, damage: str) -> None:
    state = ckpt.load(good)
    if damage == "shapes":
        key = next(k for k in state.net if k.endswith(".W"))
        state.net[key] = state.net[key][..., :1]
    elif damage == "optimiser":
        key = next(k for k in state.optim if k != "steps")
        state.optim[key] = np.zeros(3, np.float32)
    elif damage == "rng":
        stream = next(iter(state.rng))
        state.rng[stream] = {**state.rng[stream], "state": {"state": "x"}}
    elif damage == "nan":
        key = next(k for k in state.net if k.endswith(".W"))
        state.net[key] = np.full_like(state.net[key], np.nan)
    else:  # an epoch: -3 or 99, neither of them one the run logged
        state = dataclasses.replace(state, epoch=int(damage))
    ckpt.save(out, state)


def _copies(folder: Path, run_id: str) -> tuple[Path, Path]:
    [artifact] = folder.glob(f"mlruns/**/{run_id}/artifacts/checkpoint/last.npz")
    return checkpoint_path(run_id), artifact


@pytest.mark.parametrize("damage", ["shapes", "optimiser", "rng", "nan", "-3", "99"])
def test_both_copies_bad_leaves_the_run_as_it_was_naming_both(killed, damage, tmp_path,
                                                                monkeypatch):
    folder, run_id, good = killed
    monkeypatch.chdir(folder)
    local, artifact = _copies(folder, run_id)
    (tmp_path / "good.npz").write_bytes(good)
    try:
        _damaged(tmp_path / "good.npz", local, damage)
        shutil.copyfile(local, artifact)
        with pytest.raises(ResumeError) as info:
            resume(run_id, f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        local.write_bytes(good)
        artifact.write_bytes(good)
    message = str(info.value)
    assert f"the local copy: {local}" in message or f"checkpoint {local}" in message
    assert f"the artifact: runs:/{run_id}/checkpoint/last.npz" in message \
        or f"checkpoint runs:/{run_id}/checkpoint/last.npz" in message
    assert "left as it was" in message
    expected = {"shapes": "shape", "optimiser": "optimiser state", "rng": "stream",
                "nan": "not finite", "-3": ">= 0", "99": "epoch 99 is not one of the run's 3"}
    assert expected[damage] in message, message
    assert mlflow.MlflowClient().get_run(run_id).info.status == "KILLED"


def test_a_bad_local_copy_gives_way_to_the_artifact(killed, monkeypatch, caplog):
    folder, run_id, good = killed
    monkeypatch.chdir(folder)
    monkeypatch.setattr(checkpoints.log, "disabled", False)  # an earlier logging config may have
    local, _ = _copies(folder, run_id)
    (folder / "good.npz").write_bytes(good)
    _damaged(folder / "good.npz", local, "nan")
    outcome = resume(run_id, f"sqlite:///{folder / 'mlflow.db'}")
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_epoch"] == "1"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "train_loss")] \
        == [1, 2, 3]
    assert np.isfinite(outcome.test_loss)
    assert any("not finite; trying the run's artifact instead" in r.getMessage()
               for r in caplog.records)
