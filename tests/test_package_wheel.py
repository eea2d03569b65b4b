"""`python -m build` makes a wheel that holds cnn/, experiments/ and the configs, and that
works when installed into a clean virtual environment, run from outside the repository.

Installing the dependencies (MLflow and its tree) from the package index would take many
minutes, so the clean environment gets only the wheel (--no-deps, --no-index) and borrows
the dependencies of the environment running the tests through a .pth file. A .pth line
adds a folder to sys.path without running that folder's own .pth files, so the project's
editable install there is not picked up: every project import comes from the wheel, which
the test checks.
"""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cnn

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "cnn", "experiments", "conf"]


def run(args, cwd, env=None, timeout=600):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources so no build/ folder lands in the checkout.

    --no-isolation builds with this environment's setuptools instead of fetching one;
    the isolated build (plain `python -m build`) runs the same backend.
    """
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
         str(source)], cwd=source)
    (built,) = dist.glob("*.whl")
    return built


def test_wheel_holds_the_code_the_configs_and_one_version(wheel):
    assert wheel.name == f"numpy_cnn_lab-{cnn.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("cnn/__init__.py", "cnn/layers/conv.py", "cnn/data/splits.py",
                     "experiments/train.py", "experiments/predict.py",
                     "experiments/datasets/image_folder.py",
                     "experiments/serving/pyfunc_model.py", "experiments/config/schemas.py",
                     "conf/__init__.py", "conf/train.yaml", "conf/data/digits.yaml",
                     "conf/data/image_folder.yaml", "conf/optim/sgd.yaml"):
        assert expected in names, expected
    repo_configs = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "conf").rglob("*.yaml")}
    assert repo_configs <= names
    assert not any(n.startswith("tests/") or "__pycache__" in n for n in names)
    metadata = zipfile.ZipFile(wheel).read(
        f"numpy_cnn_lab-{cnn.__version__}.dist-info/METADATA").decode()
    assert f"Version: {cnn.__version__}\n" in metadata
    assert "Requires-Dist: pillow" in metadata and "Requires-Dist: scikit-learn" in metadata


def test_installed_wheel_runs_outside_the_repository(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=tmp_path)
    venv_site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         cwd=tmp_path).stdout.strip())
    (venv_site / "borrowed_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{outside / 'mlflow.db'}"
    where = run([python, "-c", "import cnn, conf, experiments.train, importlib.metadata as m;"
                 "print(cnn.__file__, conf.__file__, experiments.train.__file__);"
                 "print(m.version('numpy-cnn-lab'), cnn.__version__)"],
                cwd=outside, env=env).stdout.split()
    for path in where[:3]:
        assert Path(path).is_relative_to(venv_site), where
    assert where[3] == where[4] == cnn.__version__

    train_help = run([python, "-m", "experiments.train", "--help"], cwd=outside, env=env).stdout
    assert "data: cifar10, cifar10_aug, digits, image_folder" in train_help
    assert "optim: adam, adamw, rmsprop, sgd" in train_help
    job = run([python, "-m", "experiments.train", "--cfg", "job", "data=digits"],
              cwd=outside, env=env).stdout
    assert "name: digits" in job and "image_size: 32" in job
    predict_help = run([python, "-m", "experiments.predict", "--help"], cwd=outside,
                       env=env).stdout
    assert "MODEL_URI" in predict_help and "--top-k" in predict_help
    version = run([python, "-m", "experiments.predict", "--version"], cwd=outside, env=env)
    assert version.stdout.strip() == f"numpy-cnn-lab {cnn.__version__}"
