"""experiments.reap marks KILLED the runs whose process died without ending them (SIGKILL),
leaves live and finished runs alone, and a reaped run can be resumed."""

import os
import socket

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

RUN = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
       "trainer.epochs=2", "trainer.batch_size=50", "trainer.layer_stats=false"]


def test_sigkilled_run_is_reaped_and_resumable(harness_cli):
    cli = harness_cli
    done = cli.run("experiments.train", *RUN, "tracking.run_name=crashed",
                   "+callbacks.kill._target_=faults.KillAfterEpoch", "+callbacks.kill.epoch=1")
    assert done.returncode == -9, done.stderr
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    [crashed] = client.search_runs([experiment.experiment_id])
    assert crashed.info.status == "RUNNING"
    assert crashed.data.tags["host"] == socket.gethostname()
    # A live run of this host (this test's own process) and one of another machine.
    live = client.create_run(experiment.experiment_id, run_name="live",
                             tags={"host": socket.gethostname(), "pid": str(os.getpid())})
    remote = client.create_run(experiment.experiment_id, run_name="remote",
                               tags={"host": "elsewhere", "pid": "1"})

    dry = cli.run("experiments.reap", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would mark KILLED: {crashed.info.run_id}" in dry.stdout
    assert client.get_run(crashed.info.run_id).info.status == "RUNNING"

    done = cli.run("experiments.reap")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("marked KILLED") == 1
    assert crashed.info.run_id in done.stdout and "is gone" in done.stdout
    reaped = client.get_run(crashed.info.run_id)
    assert reaped.info.status == "KILLED"
    assert reaped.data.tags["failure_reason"].startswith("reaped: its process")
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
    assert client.get_run(remote.info.run_id).info.status == "RUNNING"

    # --older-than 0: any RUNNING run idle for 0 hours or more, whatever its host.
    done = cli.run("experiments.reap", "--older-than", "0")
    assert done.returncode == 0, done.stderr
    assert client.get_run(remote.info.run_id).info.status == "KILLED"

    done = cli.run("experiments.resume", crashed.info.run_id)
    assert done.returncode == 0, done.stderr
    resumed = client.get_run(crashed.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(crashed.info.run_id,
                                                      "train_loss")] == [1, 2]
