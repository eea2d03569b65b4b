"""The tracking server going away mid-run never stops training. If it comes back, the run
catches up and ends FINISHED with every metric; if not, the run stops with a message saying
where the unsent metrics are, and `experiments.resume --force` sends them later.

A real `mlflow server` on a free loopback port is stopped after epoch 1 and (in the first
test) started again on the same port."""

import json
import subprocess
import threading
import time

import pytest

from experiments.tracking.server import TrackingServer

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

# Enough epochs that training is still going when the test has stopped the server.
EPOCHS = 8
RUN = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=300",
       f"trainer.epochs={EPOCHS}", "trainer.batch_size=50"]
ALL_EPOCHS = list(range(1, EPOCHS + 1))


@pytest.fixture
def server(harness_cli):
    cli = harness_cli
    srv = TrackingServer(f"sqlite:///{cli.folder / 'server.db'}", cli.folder / "artifacts",
                         log_path=cli.folder / "server.log")
    cli.tracking_uri = srv.start()
    # Fail fast while the server is away (the test's budget, not the product's default).
    cli.env = {**cli.env, "MLFLOW_TRACKING_URI": cli.tracking_uri,
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    yield srv
    srv.stop()


class Output:
    """Collects a child's output lines in a thread; wait_for(text) blocks until one appears."""

    def __init__(self, proc):
        self.lines, self.proc = [], proc
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=90.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.text():
                return
            if self.proc.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.2)
        pytest.fail(f"{text!r} never appeared:\n{self.text()}")


def start_and_cut(cli, server, *extra):
    """Start training, stop the server once epoch 1 is logged; returns (proc, output, run id)."""
    proc = cli.start("experiments.train", *RUN, *extra)
    out = Output(proc)
    client = cli.client()
    deadline = time.monotonic() + 120
    run = None
    while run is None and time.monotonic() < deadline:
        experiment = client.get_experiment_by_name("cifar10-cnn")
        runs = [] if experiment is None else client.search_runs([experiment.experiment_id])
        run = next((r for r in runs if "train_loss" in r.data.metrics), None)
        if proc.poll() is not None:
            pytest.fail(f"training ended too early:\n{out.text()}")
        time.sleep(0.3)
    assert run is not None, out.text()
    server.stop()
    return proc, out, run.info.run_id


def steps(cli, run_id, key="train_loss"):
    return sorted(m.step for m in cli.client().get_metric_history(run_id, key))


def test_run_catches_up_when_the_server_returns(harness_cli, server):
    cli = harness_cli
    proc, out, run_id = start_and_cut(cli, server)
    try:
        out.wait_for("the tracking server cannot be reached")
        server.start()  # the same port
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.thread.join(10)
    assert proc.returncode == 0, out.text()
    assert "answers again" in out.text()
    run = cli.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert steps(cli, run_id) == ALL_EPOCHS
    # Layer statistics start at step 0, the untrained network (cnn.diagnostics).
    assert steps(cli, run_id, "watch.conv1.act_std") == [0, *ALL_EPOCHS]
    assert "test_acc" in run.data.metrics


def test_run_stops_with_a_clear_message_and_resume_sends_the_rest(harness_cli, server):
    cli = harness_cli
    proc, out, run_id = start_and_cut(cli, server, "tracking.offline_wait_s=2")
    try:
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.thread.join(10)
    text = out.text()
    assert proc.returncode != 0, text
    unsent = cli.folder / "checkpoints" / run_id / "unsent_metrics.json"
    assert "still unreachable" in text and str(unsent) in text, text
    assert f"make resume RUN_ID={run_id} ARGS=--force" in text
    kept = json.loads(unsent.read_text())["metrics"]
    # Every epoch from the one that met the stopped server to the last is kept. Which
    # epoch that is depends on the machine's speed: training runs on while the test
    # stops the server after seeing epoch 1.
    kept_epochs = {s for k, _, _, s in kept if k == "train_loss"}
    assert kept_epochs and kept_epochs == set(range(min(kept_epochs), EPOCHS + 1)), kept_epochs
    assert 1 not in kept_epochs  # logged before the cut

    server.start()
    done = subprocess.run(cli.command("experiments.resume", run_id, "--force"), cwd=cli.folder,
                          env=cli.env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    run = cli.client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert steps(cli, run_id) == ALL_EPOCHS
    assert "test_acc" in run.data.metrics
    assert not unsent.exists()
