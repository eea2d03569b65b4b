"""predict stopped or misused (issue 27): its temporary model folder is removed whichever
stop signal arrives, a stop is never swallowed into exit status 0, a folder that is not a
model is refused before anything is copied, and a floating-point TIFF is read as it looks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from fixtures.harness import default_signals
from PIL import Image

from experiments.datasets.images import load_image
from experiments.serving.predict import ModelLoadError, predict_uri

# predict's main with the model's loading replaced: it writes a file into the temporary
# folder MLflow would download to, then the process gets `signal` while inside it, either
# plainly or from a finaliser (where Python prints the KeyboardInterrupt as ignored).
STOPPED = textwrap.dedent("""
    import os, signal, sys
    import experiments.serving.predict as serving
    from experiments.predict import main

    how, signum = sys.argv[1], getattr(signal, sys.argv[2])

    class SignalsWhenCollected:
        def __del__(self):
            os.kill(os.getpid(), signum)

    def load_model(uri, folder):
        open(os.path.join(folder, "MLmodel"), "w").write("partial")
        if how == "plain":
            os.kill(os.getpid(), signum)
        else:
            SignalsWhenCollected()
        return "model"

    serving.load_model = load_model
    serving.predict_files = lambda model, paths, k: ["a prediction"]
    sys.exit(main(["runs:/0123/model", sys.argv[3]]))
""")


@pytest.mark.slow  # each case a process importing MLflow, ~5 s
@pytest.mark.parametrize("how", ["plain", "in a finaliser"])
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_removes_the_model_folder_and_ends_the_command(tmp_path, name, how):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-c", STOPPED, how.split()[0], name, str(image)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          preexec_fn=default_signals)
    assert done.returncode == -getattr(signal, name), done.stderr  # died of it, as a shell sees
    assert "a prediction" not in done.stdout
    assert f"predict: stopped by {name}" in done.stderr
    assert list(temp.iterdir()) == []


def test_a_folder_that_is_not_a_model_is_refused_before_it_is_copied(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "big.bin").write_bytes(bytes(1 << 20))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    for uri in (str(folder), f"file://{folder}", str(folder / "big.bin")):
        with pytest.raises(ModelLoadError, match="with no MLmodel file, not a logged model's"):
            predict_uri(uri, [tmp_path / "x.png"], 3)
    with pytest.raises(ModelLoadError, match="no such folder"):
        predict_uri(str(tmp_path / "nowhere"), [tmp_path / "x.png"], 3)
    assert list(temp.iterdir()) == []


def test_a_floating_point_tiff_is_read_as_it_looks(tmp_path):
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "unit.tiff")
    got = load_image(tmp_path / "unit.tiff", (8, 8, 1))[..., 0]
    np.testing.assert_array_equal(got, np.rint(ramp * 255).astype(np.uint8))
    # Values beyond 1 are taken as 0..255 already.
    Image.fromarray(ramp * 200 + 10, mode="F").save(tmp_path / "wide.tiff")
    got = load_image(tmp_path / "wide.tiff", (8, 8, 3))
    np.testing.assert_array_equal(got[..., 1], np.rint(ramp * 200 + 10).astype(np.uint8))
