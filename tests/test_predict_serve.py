"""The logged pyfunc model serves with `mlflow models serve --env-manager local`: a batch of
uint8 images posted as MLflow's tensor JSON comes back as class probabilities."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]

STARTUP_TIMEOUT_S = 180  # importing MLflow and loading the model, on a busy machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited ({server.returncode}):\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    pytest.fail(f"no answer from {url} within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")


def stop(server: subprocess.Popen) -> None:
    """End the server and the workers it started (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def test_served_model_returns_probabilities(digits_run, tmp_path, monkeypatch):
    import mlflow

    from experiments.datasets.digits import prepare_digits

    uri = f"runs:/{digits_run.run.info.run_id}/model"
    images = np.ascontiguousarray(prepare_digits().x_test[:5])  # uint8 (5, 32, 32, 3)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", digits_run.cli.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    expected = mlflow.pyfunc.load_model(uri).predict(images)

    port = free_port()
    log_path = tmp_path / "server.log"
    bin_dir = os.path.dirname(sys.executable)
    # The server execs `uvicorn` by name: the environment's bin/ must be on PATH, as it is
    # in an activated virtual environment.
    env = {**digits_run.cli.env, "PATH": os.pathsep.join([bin_dir, os.environ["PATH"]])}
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m", uri,
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own group, so its workers stop with it
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", server, log_path)
        # A tensor signature takes {"inputs": nested lists}, cast to the signature's uint8.
        body = json.dumps({"inputs": images.tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
    finally:
        stop(server)
    probs = np.asarray(answer["predictions"], dtype=np.float64)
    assert probs.shape == (5, 10)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
