"""How runs end: Ctrl-C or SIGTERM -> KILLED, a diverged loss or an error -> FAILED with
the reason, and a failed job in a sweep leaves the other jobs and the report alone.
No run is ever left RUNNING."""

import re
import signal
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

QUICK = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
         "tracking.log_dataset=false"]
# A run that the signal always finds still training: far more epochs than a test waits
# for, of 10 steps each. (300 images in 3-step epochs once finished all 500 epochs, in
# 61 s, before the polling test had seen the first one in the store.)
LONG_RUN = ["data.n_train=1000", "trainer.epochs=2000", "trainer.batch_size=100"]


def all_runs(cli):
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def only_run(cli):
    runs = all_runs(cli)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def wait_for_first_epoch(cli, proc, timeout: float = 120.0):
    """Poll the store until the run has logged an epoch; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it was interrupted:\n{proc.stdout.read()}")
        for run in all_runs(cli):
            if "train_loss" in run.data.metrics:
                return run
        time.sleep(0.5)
    proc.kill()
    pytest.fail("no epoch was logged in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_ends_killed(harness_cli, signum):
    proc = harness_cli.start("experiments.train", *QUICK, *LONG_RUN)
    try:
        run = wait_for_first_epoch(harness_cli, proc)
        assert run.info.status == "RUNNING"
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=180)  # a busy machine ends a run slowly
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, output
    run = only_run(harness_cli)
    assert run.info.status == "KILLED", output
    assert "interrupted" in run.data.tags["failure_reason"]
    assert len(harness_cli.client().get_metric_history(run.info.run_id, "train_loss")) < 500


def test_a_burst_of_signals_still_ends_the_run_killed(harness_cli):
    # Ctrl-C pressed again and again: later interrupts land while the run is being ended
    # (in mlflow.end_run), which must still finish. Three 10 ms apart, then a steady stream
    # until the process exits, so that some surely arrive during the ending.
    proc = harness_cli.start("experiments.train", *QUICK, *LONG_RUN)
    try:
        wait_for_first_epoch(harness_cli, proc)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.01)
        output, _ = proc.communicate(timeout=180)  # a busy machine ends a run slowly
    finally:
        if proc.poll() is None:
            proc.kill()
    run = only_run(harness_cli)
    assert run.info.status == "KILLED", output
    assert "interrupted" in run.data.tags["failure_reason"]


def test_a_closed_terminal_ends_the_run_killed(harness_cli):
    proc = harness_cli.start("experiments.train", *QUICK, *LONG_RUN)
    try:
        wait_for_first_epoch(harness_cli, proc)
        proc.send_signal(signal.SIGHUP)
        output, _ = proc.communicate(timeout=180)  # a busy machine ends a run slowly
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, output
    run = only_run(harness_cli)
    assert run.info.status == "KILLED", output
    assert "SIGHUP" in run.data.tags["failure_reason"]


def test_absurd_learning_rate_ends_failed_with_reason(harness_cli):
    done = harness_cli.run("experiments.train", *QUICK, "optim.lr=1e6", "data.n_train=200",
                           "trainer.epochs=5", "trainer.batch_size=50")
    assert done.returncode != 0
    assert "diverged" in done.stderr
    run = only_run(harness_cli)
    tags = run.data.tags
    assert run.info.status == "FAILED"
    assert tags["error_type"] == "DivergenceError"
    assert re.fullmatch(r"loss became (nan|inf|-inf) at epoch \d+, step \d+",
                        tags["failure_reason"])
    epoch = int(tags["failure_epoch"])
    assert 1 <= epoch <= 5 and int(tags["failure_step"]) >= 0
    # It stopped at once: no epoch was logged from the diverged one onwards.
    history = harness_cli.client().get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == list(range(1, epoch))
    assert "test_acc" not in run.data.metrics


def test_error_ends_failed_with_the_error(harness_cli):
    done = harness_cli.run("experiments.train", *QUICK, "data.n_train=200", "trainer.epochs=2",
                           "trainer.batch_size=50", "tracking.log_model=false",
                           "+callbacks.fault._target_=faults.FailAfterEpoch",
                           "+callbacks.fault.epoch=1")
    assert done.returncode != 0
    run = only_run(harness_cli)
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "RuntimeError"
    assert "fault injected after epoch 1" in run.data.tags["failure_reason"]


def test_data_that_cannot_be_had_fails_before_any_run(harness_cli):
    # More training images than the data has: the data pipeline refuses, before the run.
    done = harness_cli.run("experiments.train", *QUICK, "data.n_train=1000000")
    assert done.returncode != 0
    assert "n_train=1000000" in done.stderr
    assert all_runs(harness_cli) == []


@pytest.mark.parametrize("bad", ["data.augment.crop_pad=40", "data.classes=[3,3]",
                                 "data.classes=[12]", "optim.lr=inf",
                                 "trainer.checkpoint_every=-1"])
def test_a_bad_value_fails_before_any_run(harness_cli, bad):
    done = harness_cli.run("experiments.train", *QUICK, "data.n_train=200", bad)
    assert done.returncode != 0
    assert bad.split("=")[0] in done.stderr, done.stderr
    assert all_runs(harness_cli) == []


def test_a_failed_job_does_not_stop_the_sweep(harness_cli):
    done = harness_cli.run("experiments.train", "-m", *QUICK, "tracking.log_model=false",
                           "data.n_train=200", "trainer.epochs=2", "trainer.batch_size=50",
                           "optim.lr=1e6,0.03", f"hydra.sweep.dir={harness_cli.folder / 'mr'}")
    assert done.returncode == 0, done.stderr
    runs = all_runs(harness_cli)
    parent = next(r for r in runs if "sweep_dir" in r.data.tags)
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.start_time)
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FAILED", "FINISHED"]
    assert children[0].data.tags["error_type"] == "DivergenceError"
    assert "test_acc" in children[1].data.metrics
    assert parent.data.tags["jobs"] == "2 runs: 1 FAILED, 1 FINISHED"
    assert all(r.info.status != "RUNNING" for r in runs)


def test_interrupted_sweep_leaves_nothing_running(harness_cli):
    proc = harness_cli.start("experiments.train", "-m", *QUICK, *LONG_RUN, "init=he,xavier",
                             f"hydra.sweep.dir={harness_cli.folder / 'mr'}")
    try:
        wait_for_first_epoch(harness_cli, proc)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=180)  # a busy machine ends a run slowly
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, output
    runs = all_runs(harness_cli)
    statuses = {("parent" if "sweep_dir" in r.data.tags else "job"): r.info.status for r in runs}
    # Ctrl-C stops the whole sweep: the second job never starts.
    assert len(runs) == 2 and statuses == {"parent": "KILLED", "job": "KILLED"}, output


def test_one_owner_ends_an_interrupted_sweeps_parent_once(harness_cli):
    # Ctrl-C just as job 0's run has ended, then again while the parent is being ended
    # (faults.StopAsTheRunEnds). No child's interruption ends the parent here: the sweep's
    # callback, its one owner, must end it on the way out, once, KILLED, whatever signal
    # lands meanwhile. (Ending it from the child and again at exit left it RUNNING: the
    # second Ctrl-C cut the exit handler short.)
    done = harness_cli.run("experiments.train", "-m", *QUICK, "tracking.log_model=false",
                           "data.n_train=100", "trainer.epochs=1", "trainer.batch_size=50",
                           "init=he,xavier", "+callbacks.fault._target_=faults.StopAsTheRunEnds",
                           f"hydra.sweep.dir={harness_cli.folder / 'mr'}", timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    runs = all_runs(harness_cli)
    parent = next(r for r in runs if "sweep_dir" in r.data.tags)
    children = [r for r in runs if r is not parent]
    assert [c.info.status for c in children] == ["FINISHED"], output[-3000:]  # job 1: never
    assert parent.info.status == "KILLED", output[-3000:]
    assert parent.data.tags["failure_reason"] == "interrupted: received signal SIGINT"
    assert output.count("fault: ending the sweep's parent as KILLED") == 1, output[-3000:]
    assert output.count("fault: the sweep's parent is ended") == 1, output[-3000:]
