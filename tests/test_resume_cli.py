"""experiments.resume: a run interrupted after epoch 2 of 4 and resumed in place ends
FINISHED with every per-epoch metric and test_acc equal to an uninterrupted run's."""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

RUN = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
       "data.n_val=50", "trainer.epochs=4", "trainer.batch_size=50", "data=cifar10_aug"]
TIMINGS = {"epoch_time_s", "images_per_s"}
# Ctrl-C right after epoch 2's checkpoint (tests/faults.py).
FAULT = ["+callbacks.fault._target_=faults.InterruptAfterEpoch", "+callbacks.fault.epoch=2"]


def run_by_name(cli, name):
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def all_series(cli, run):
    client = cli.client()
    return {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id,
                                                                              key),
                                                    key=lambda m: (m.step, m.timestamp))]
            for key in run.data.metrics if key not in TIMINGS}


def test_interrupted_run_resumes_to_the_uninterrupted_result(harness_cli):
    cli = harness_cli
    done = cli.run("experiments.train", *RUN, "tracking.run_name=full")
    assert done.returncode == 0, done.stderr
    done = cli.run("experiments.train", *RUN, *FAULT, "tracking.run_name=cut")
    assert done.returncode != 0
    cut = run_by_name(cli, "cut")
    assert cut.info.status == "KILLED", done.stderr
    client = cli.client()
    assert [m.step for m in client.get_metric_history(cut.info.run_id, "train_loss")] == [1, 2]
    assert "checkpoint/last.npz" in [a.path for a in client.list_artifacts(cut.info.run_id,
                                                                           "checkpoint")]

    (cli.folder / "checkpoints").rename(cli.folder / "moved")  # only the artifact is left
    done = cli.run("experiments.resume", cut.info.run_id)
    assert done.returncode == 0, done.stderr
    resumed, full = run_by_name(cli, "cut"), run_by_name(cli, "full")
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["resumed_from_epoch"] == "2"
    expected, got = all_series(cli, full), all_series(cli, resumed)
    assert "test_acc" in got and "val_acc" in got and "watch.conv1.update_ratio" in got
    assert got == expected

    again = cli.run("experiments.resume", cut.info.run_id)
    assert again.returncode == 2
    assert "FINISHED: there is nothing to resume" in again.stderr


def test_corrupt_checkpoint_is_refused_with_its_name(harness_cli):
    cli = harness_cli
    after_first = [FAULT[0], "+callbacks.fault.epoch=1"]
    done = cli.run("experiments.train", *RUN, *after_first, "tracking.run_name=cut")
    assert done.returncode != 0
    run_id = run_by_name(cli, "cut").info.run_id
    local = cli.folder / "checkpoints" / run_id / "last.npz"
    [artifact] = cli.folder.glob(f"mlruns/**/{run_id}/artifacts/checkpoint/last.npz")
    good = artifact.read_bytes()
    local.write_bytes(good[:100])
    artifact.write_bytes(good[:100])

    # Both copies damaged: a clear error naming the file; the run is left as it was.
    done = cli.run("experiments.resume", run_id)
    assert done.returncode == 2, done.stderr
    assert "corrupt or truncated" in done.stderr and str(local) in done.stderr
    assert f"error: run {run_id} has no usable checkpoint, and is left as it was" in done.stderr
    assert "Traceback" not in done.stderr
    # The artifact is named as such, not as the temporary file it was downloaded to.
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"checkpoint runs:/{run_id}/checkpoint/last.npz is corrupt" in error, error
    assert run_by_name(cli, "cut").info.status == "KILLED"

    # Only the local copy damaged: it says so and resumes from the artifact.
    artifact.write_bytes(good)
    done = cli.run("experiments.resume", run_id)
    assert done.returncode == 0, done.stderr
    assert "trying the run's artifact instead" in done.stderr
    finished = run_by_name(cli, "cut")
    assert finished.info.status == "FINISHED"
    # It no longer failed: the reason it was KILLED is gone with it.
    assert "failure_reason" not in finished.data.tags
    assert "error_type" not in finished.data.tags
