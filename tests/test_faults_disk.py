"""A full disk: the run ends FAILED with a reason naming the files it could not write and
what to do (OSError's own "No space left on device" names none). Checkpointing: the
previous checkpoint is intact, and the run resumes from it once there is room.

A full disk is the kernel's own where a test can choose the file: a symlink to /dev/full,
every write to which fails with ENOSPC. Inside MLflow's artifact copy it is injected."""

import errno
import os

import pytest

from cnn import checkpoint
from experiments.tracking import disk
from experiments.tracking.offline import OfflineBuffer

RUN = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
       "trainer.epochs=3", "trainer.batch_size=50", "tracking.run_name=full-disk"]

# experiments.train with the second checkpoint's write failing as on a full disk.
FULL_DISK = """
import sys
import numpy as np
real, calls = np.savez, []
def savez(f, **arrays):
    if "rng" in arrays:  # a checkpoint, not weights.npz
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
    return real(f, **arrays)
np.savez = savez
from experiments.train import main
sys.argv = ["experiments.train", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_full_disk_fails_clearly_and_keeps_the_last_checkpoint(harness_cli):
    import subprocess
    import sys

    cli = harness_cli
    done = subprocess.run([sys.executable, "-c", FULL_DISK, *RUN], cwd=cli.folder, env=cli.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    client = cli.client()
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    local = cli.folder / "checkpoints" / run.info.run_id / "last.npz"
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "CheckpointError"
    reason = run.data.tags["failure_reason"]
    assert f"could not write checkpoint {local}" in reason and "No space left" in reason
    assert checkpoint.load(local).epoch == 1  # the previous one, intact
    assert [p.name for p in local.parent.iterdir()] == ["last.npz"]

    done = cli.run("experiments.resume", run.info.run_id)
    assert done.returncode == 0, done.stderr
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    # Epoch 2 was logged before its checkpoint failed, and is logged again on resuming:
    # the same value at the same step (training is deterministic), nothing lost.
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 2, 3]
    assert len({m.value for m in history if m.step == 2}) == 1


# experiments.train with MLflow's copy of one artifact folder's files failing as on a full
# disk: the copy into the staging file in the artifact folder raises ENOSPC, naming no file.
FULL_ARTIFACT = """
import errno, os, shutil, sys
real, folder = shutil.copyfileobj, f"/artifacts/{os.environ['FULL_ARTIFACT']}/"
def copyfileobj(source, target, *args, **kwargs):
    if folder in os.readlink(f"/proc/self/fd/{target.fileno()}"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(source, target, *args, **kwargs)
shutil.copyfileobj = copyfileobj
from experiments.train import main
sys.argv = ["experiments.train", *sys.argv[1:]]
main()
"""


def train_on_a_full_artifact_folder(cli, folder: str):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FULL_ARTIFACT, *RUN], cwd=cli.folder,
                          env={**cli.env, "FULL_ARTIFACT": folder}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    client = cli.client()
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "DiskFullError"
    assert "Traceback" not in run.data.tags["failure_reason"]
    return run, done


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_a_full_disk_copying_the_checkpoint_artifact_names_it(harness_cli):
    # issue 27: the run ended FAILED with a bare "OSError: [Errno 28] No space left on device".
    run, done = train_on_a_full_artifact_folder(harness_cli, "checkpoint")
    artifacts = run.info.artifact_uri.removeprefix("file://")
    local = harness_cli.folder / "checkpoints" / run.info.run_id / "last.npz"
    reason = run.data.tags["failure_reason"]
    assert (f"no space left on the device for run {run.info.run_id}'s artifact "
            f"checkpoint/last.npz: {artifacts}/checkpoint/last.npz (") in reason
    assert (f"Its local copy {local} is whole: free space there, then `make resume "
            f"RUN_ID={run.info.run_id}` continues from it.") in reason
    assert checkpoint.load(local).epoch == 1
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {reason.split(': ', 1)[1]}"
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_a_full_disk_logging_a_figure_names_where_the_run_writes(harness_cli):
    # MLflow stages a figure in TMPDIR, then copies it: either may be the full one.
    run, _ = train_on_a_full_artifact_folder(harness_cli, "figures")
    artifacts = run.info.artifact_uri.removeprefix("file://")
    reason = run.data.tags["failure_reason"]
    assert f"no space left on the device for the files of run {run.info.run_id}: " in reason
    for place in (artifacts, harness_cli.folder / "checkpoints" / run.info.run_id,
                  harness_cli.folder / "mlflow.db"):
        assert f"{place} (" in reason and " free)" in reason
    assert f"then `make resume RUN_ID={run.info.run_id}` continues it" in reason


@pytest.fixture
def full_file(tmp_path):
    """A path in tmp_path whose writes fail for want of space."""
    path = tmp_path / "full" / "file"
    path.parent.mkdir()
    path.symlink_to("/dev/full")
    return path


def test_unsent_metrics_on_a_full_disk_name_their_file(full_file):
    buffer = OfflineBuffer("abc123", full_file)
    buffer.add({"train_loss": 1.0}, step=1)
    with pytest.raises(disk.DiskFullError) as raised:
        buffer.save_offline()
    assert str(raised.value).startswith(
        f"no space left on the device for the 1 unsent metric values of run abc123: "
        f"{full_file} (")
    assert raised.value.__cause__.errno == errno.ENOSPC  # the kernel's own, named nowhere
    assert raised.value.__cause__.filename is None


def test_only_a_full_disk_is_named(tmp_path):
    with pytest.raises(PermissionError):  # not for want of space: left as it is
        with disk.naming_full_disk("x", [tmp_path], "do y"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
    with pytest.raises(disk.DiskFullError, match=f"for x: {tmp_path}/a .*free\\); {tmp_path} "
                                                 f"\\(.* free\\)\\. do y$"):
        with disk.naming_full_disk("x", [tmp_path], "do y"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "a"))
    sqlite = RuntimeError("(sqlite3.OperationalError) database or disk is full")
    assert disk.is_disk_full(sqlite)
    assert not disk.is_disk_full(disk.DiskFullError("named already"))


def test_free_space_is_of_the_nearest_folder_that_exists(tmp_path):
    free = disk.free_space(tmp_path / "not" / "yet")
    assert free.endswith(" free") and free != "free space unknown"


def fake_sweep(client) -> str:
    """A sweep's parent run and two finished child runs, as the report reads them."""
    experiment = client.create_experiment("cifar10-cnn")
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    for seed in (0, 1):
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
        for key, value in {"init.name": "he", "optim.lr": "0.01", "trainer.seed": seed}.items():
            client.log_param(run, key, value)
        for step in (1, 2):
            client.log_metric(run, "train_loss", 2.0 / step, step=step)
            client.log_metric(run, "val_acc", 0.2 * step, step=step)
        client.log_metric(run, "test_acc", 0.4, step=2)
        client.set_terminated(run)
    client.set_terminated(parent)
    return parent


@pytest.mark.data
@pytest.mark.mlflow
def test_a_full_disk_writing_the_report_names_its_folder(harness_cli, tmp_path):
    parent = fake_sweep(harness_cli.client())
    out = tmp_path / "report"
    out.mkdir()
    os.symlink("/dev/full", out / "summary.md")
    done = harness_cli.run("experiments.report", "--parent", parent, "--out", str(out))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: no space left on the device for the report of sweep "
                           f"{parent}: {out} (")
    assert line.endswith(f"then `python -m experiments.report --parent {parent}` writes it "
                         "again.")
