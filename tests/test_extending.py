"""The README's Extending section is true: a new optimiser is one registered class in
cnn/optim.py plus one YAML file in conf/optim/, and the schemas, validation and a
training run find it from there alone.

The test copies the code into a temporary checkout, adds exactly those two things, and
trains one epoch with the new optimiser through `python -m experiments.train`.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What the README's Extending section tells a reader to write, for a sign-SGD optimiser.
TOY_OPTIMISER = '''

@OPTIMIZERS.register("signsgd")
class SignSGD(Optimizer):
    """Steps by the sign of the gradient: p -= lr * sign(g)."""

    def __init__(self, lr: float, weight_decay: float = 0.0, clip: float = 1.0) -> None:
        super().__init__(lr, weight_decay)
        if clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip = clip

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        p -= self.lr * np.clip(np.sign(g), -self.clip, self.clip)
'''
TOY_YAML = """defaults:
  - /schema/optim/signsgd@_here_
  - _self_

lr: 0.001
"""
RUN = ["optim=signsgd", "model=seed", "data.n_train=100", "trainer.epochs=1",
       "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
       "tracking.log_model=false", "tracking.log_dataset=false"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of cnn/, experiments/ and conf/ with the toy optimiser added as documented."""
    root = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("cnn", "experiments", "conf"):
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    with open(root / "cnn" / "optim.py", "a") as f:
        f.write(TOY_OPTIMISER)
    (root / "conf" / "optim" / "signsgd.yaml").write_text(TOY_YAML)
    return root


def train(checkout: Path, cifar_root: Path, *overrides: str,
          store: str = "mlflow.db") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout), "CIFAR10_ROOT": str(cifar_root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{checkout / store}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    return subprocess.run([sys.executable, "-m", "experiments.train", *RUN, *overrides],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.mlflow
def test_a_new_optimiser_trains_from_its_config(checkout, cifar_root):
    import mlflow

    done = train(checkout, cifar_root, "optim.clip=0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{checkout / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["optim.name"], params["optim.lr"], params["optim.clip"]) == (
        "signsgd", "0.001", "0.5")
    assert "test_acc" in run.data.metrics and len(
        client.get_metric_history(run.info.run_id, "train_loss")) == 1


@pytest.mark.slow  # no training: 3 harness processes from a fresh copy of the code
@pytest.mark.data
def test_the_new_optimiser_is_typed_and_validated_from_its_class(checkout, cifar_root):
    wrong_type = train(checkout, cifar_root, "optim.clip=big", store="refused.db")
    assert wrong_type.returncode != 0 and "optim.clip" in wrong_type.stderr
    unknown = train(checkout, cifar_root, "+optim.momentum=0.9", store="refused.db")
    assert unknown.returncode != 0
    assert "optim.momentum: unknown key; optim takes clip, lr, name" in unknown.stderr
    bad_value = train(checkout, cifar_root, "optim.clip=-1", store="refused.db")
    assert bad_value.returncode != 0
    assert re.search(r"optim \(signsgd\): clip must be > 0, got -1", bad_value.stderr)
    assert not (checkout / "refused.db").exists()  # refused before any run was created
