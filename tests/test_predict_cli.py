"""`python -m experiments.predict MODEL_URI IMAGE...` prints each file's top-k classes with
their probabilities, the same ones the logged model gives in Python."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from experiments.serving.predict import format_predictions, top_k

ENTRY = re.compile(r"^\s+(\d+)\. (\S+)\s+([0-9.]+)$")


def test_top_k_orders_by_probability_and_keeps_ties_in_class_order():
    probs = np.array([[0.1, 0.6, 0.3], [0.25, 0.5, 0.25]], dtype=np.float32)
    ranked = top_k(probs, 2)
    assert [[c for c, _ in row] for row in ranked] == [[1, 2], [1, 0]]
    assert ranked[0][0][1] == pytest.approx(0.6)
    text = format_predictions("x.png", ranked[0], ["cat", "dog", "frog"])
    assert text.splitlines() == ["x.png", "   1. dog   0.6000", "   2. frog  0.3000"]


def run_predict(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "experiments.predict", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_and_bad_arguments(tmp_path):
    done = run_predict("--help")
    assert done.returncode == 0 and "MODEL_URI" in done.stdout and "--top-k" in done.stdout
    done = run_predict("runs:/0/model", str(tmp_path / "absent.png"))
    assert done.returncode == 2 and "absent.png" in done.stderr
    done = run_predict("runs:/0/model", str(tmp_path), "--top-k", "0")
    assert done.returncode == 2 and "--top-k" in done.stderr


def parse(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """{file: [(class name, probability), ...]} from the CLI's output."""
    result: dict[str, list[tuple[str, float]]] = {}
    current = None
    for line in stdout.splitlines():
        match = ENTRY.match(line)
        if match:
            assert int(match[1]) == len(result[current]) + 1
            result[current].append((match[2], float(match[3])))
        else:
            current = line
            result[current] = []
    return result


@pytest.mark.slow
@pytest.mark.mlflow
def test_predict_prints_top_k_of_each_file(digits_run, tmp_path, monkeypatch):
    import mlflow

    from experiments.datasets.digits import prepare_digits

    monkeypatch.setenv("MLFLOW_TRACKING_URI", digits_run.cli.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = f"runs:/{digits_run.run.info.run_id}/model"
    model = mlflow.pyfunc.load_model(uri)
    splits = prepare_digits()  # the run's test images: the test split ignores the seed
    probs = model.predict(np.ascontiguousarray(splits.x_test[:40]))
    sure = [i for i in range(40) if probs[i].argmax() == splits.y_test[i] and probs[i].max() > 0.9]
    first, second = sure[0], sure[1]
    # One file at the model's own size (read back exactly), one larger JPEG to resize.
    exact, resized = tmp_path / "exact.png", tmp_path / "big digit.jpg"
    Image.fromarray(splits.x_test[first]).save(exact)
    Image.fromarray(splits.x_test[second]).resize((96, 96), Image.Resampling.NEAREST).save(
        resized, quality=95)

    done = run_predict(uri, str(exact), str(resized), "--top-k", "3",
                       env=digits_run.cli.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = parse(done.stdout)
    assert list(printed) == [str(exact), str(resized)]
    for ranked in printed.values():
        assert len(ranked) == 3
        values = [p for _, p in ranked]
        assert values == sorted(values, reverse=True) and sum(values) <= 1.0 + 1e-3
    assert printed[str(exact)][0][0] == str(splits.y_test[first])
    assert printed[str(resized)][0][0] == str(splits.y_test[second])
    expected = top_k(probs[first:first + 1], 3)[0]  # the same pixels: the same numbers
    assert [name for name, _ in printed[str(exact)]] == [str(c) for c, _ in expected]
    assert [p for _, p in printed[str(exact)]] == pytest.approx([p for _, p in expected],
                                                                abs=1e-4)


@pytest.mark.slow
@pytest.mark.mlflow
def test_predict_leaves_no_copy_of_the_model_behind(digits_run, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = run_predict(f"runs:/{digits_run.run.info.run_id}/model", str(image),
                       env={**digits_run.cli.env, "TMPDIR": str(temp)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in temp.iterdir()) == []


@pytest.mark.parametrize(("uri", "message"), [
    ("", "the model URI is empty"),
    ("http://127.0.0.1:9/model", "cannot load the model 'http://127.0.0.1:9/model'"),
    ("s3://bucket/model", "cannot load the model 's3://bucket/model'"),
])
def test_a_model_uri_that_cannot_be_loaded_is_one_clear_line(uri, message, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    env = {**os.environ,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = run_predict(uri, str(image), env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr  # one line
    assert done.stderr.startswith(f"predict: {message}"), done.stderr
