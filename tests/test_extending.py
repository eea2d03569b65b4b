"""docs/extending.md is true: a new optimiser, schedule, initialiser, model
or dataset is one registered definition plus one YAML file, and the schemas, validation
and a training run find it from there alone.

The tests copy the code into a temporary checkout, add exactly those things as the
page says, and train one epoch with them through `python -m experiments.train`.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What docs/extending.md tells a reader to write, for a sign-SGD optimiser.
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
# A schedule, appended to cnn/schedules.py.
TOY_SCHEDULE = '''

@SCHEDULES.register("linear")
class LinearDecay(Schedule):
    """From lr down to end * lr, linearly over the run."""

    def __init__(self, lr: float, total_steps: int, end: float = 0.0) -> None:
        if not 0 <= end <= 1:
            raise ValueError(f"end must be in [0, 1], got {end}")
        self.lr, self.total_steps, self.end = lr, total_steps, end

    def __call__(self, step: int) -> float:
        return self.lr * (1 - (1 - self.end) * min(step / max(self.total_steps, 1), 1.0))
'''
# An initialiser with a knob, appended to cnn/initializers.py.
TOY_INIT = '''

@INITIALIZERS.register("scaled_he")
def scaled_he(
    shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator,
    scale: float = 1.0,
) -> np.ndarray:
    """He's normal initialisation times `scale`."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return scale * he_normal(shape, fan_in, fan_out, rng)
'''
# A model family, a module of its own in cnn/models/.
TOY_MODEL = '''"""`mlp`: flatten, one hidden dense layer, the classifier."""

from math import prod

import numpy as np

from cnn.initializers import Initializer
from cnn.layers import Dense, Flatten, Layer, ReLU
from cnn.models.registry import KnobError, architecture


def check_mlp(input_shape: tuple[int, ...], *, hidden: int) -> None:
    if hidden < 1:
        raise KnobError("hidden", f"mlp hidden must be >= 1, got {hidden}")


@architecture("mlp", check=check_mlp)
def mlp(input_shape: tuple[int, int, int], num_classes: int, init: Initializer,
        rng: np.random.Generator, *, hidden: int = 32) -> list[Layer]:
    return [Flatten(), Dense(prod(input_shape), hidden, init=init, rng=rng), ReLU(),
            Dense(hidden, num_classes, init=init, rng=rng)]
'''
# A dataset, a module of its own in experiments/datasets/.
TOY_DATASET = '''"""`data=stripes`: noisy horizontal (class 0) or vertical (class 1) stripes."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn.data import Splits
from experiments.datasets.base import DATASETS, DataConfig


@DATASETS.register("stripes")
@dataclass
class StripesDataConfig(DataConfig):
    name: str = "stripes"
    image_size: int = 16

    num_classes = 2

    @property
    def image_side(self) -> int:
        return self.image_size

    def load(self, seed: int) -> Splits:
        rng, side = np.random.default_rng(seed), self.image_size
        rows = (np.arange(side)[:, None] % 4 < 2) * np.ones((1, side), np.uint8) * 150

        def images(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = np.arange(n) % 2
            x = rng.integers(0, 100, size=(n, side, side, 3), dtype=np.uint8)
            x += np.where(y[:, None, None, None] == 0, rows[..., None], rows.T[..., None])
            return x.astype(np.uint8), y.astype(np.int64)

        n = self.n_train or 200
        x, y = images(n + self.n_val)
        x_test, y_test = images(100)
        return Splits(x[:n], y[:n], x[n:], y[n:], x_test, y_test, ("horizontal", "vertical"),
                      Path("stripes"))
'''


def one_yaml(group: str, name: str, *lines: str) -> str:
    """The YAML file of a new option: its schema, and only what it changes."""
    return "\n".join(["defaults:", f"  - /schema/{group}/{name}@_here_", "  - _self_", "",
                      *lines, ""])


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
    with open(root / "cnn" / "schedules.py", "a") as f:
        f.write(TOY_SCHEDULE)
    (root / "conf" / "schedule" / "linear.yaml").write_text(one_yaml("schedule", "linear"))
    with open(root / "cnn" / "initializers.py", "a") as f:
        f.write(TOY_INIT)
    (root / "conf" / "init" / "scaled_he.yaml").write_text(one_yaml("init", "scaled_he"))
    (root / "cnn" / "models" / "mlp.py").write_text(TOY_MODEL)
    (root / "conf" / "model" / "mlp.yaml").write_text(one_yaml("model", "mlp", "hidden: 16"))
    (root / "experiments" / "datasets" / "stripes.py").write_text(TOY_DATASET)
    (root / "conf" / "data" / "stripes.yaml").write_text(one_yaml("data", "stripes"))
    return root


def train(checkout: Path, cifar_root: Path, *overrides: str, store: str = "mlflow.db",
          command: tuple[str, ...] = ("-m", "experiments.train")) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout), "CIFAR10_ROOT": str(cifar_root),
           "MLFLOW_TRACKING_URI": f"sqlite:///{checkout / store}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    return subprocess.run([sys.executable, *command, *RUN, *overrides],
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


# The new schedule, initialiser, model and dataset, all at once (none needs CIFAR-10).
NEW = ["schedule=linear", "schedule.end=0.1", "init=scaled_he", "init.scale=0.5", "model=mlp",
       "data=stripes", "data.image_size=8", "optim.lr=0.01"]
# The weights of the first dense layer a run would start from, as a config builds them.
FIRST_WEIGHTS = ("import sys; from experiments.config import compose_config; "
                 "from experiments.runs.build import build_run; "
                 "print(float(build_run(compose_config(sys.argv[1:])).net.params['dense1.W'].std()))")


@pytest.mark.slow
@pytest.mark.mlflow
def test_a_new_schedule_initialiser_model_and_dataset_train_from_their_configs(checkout,
                                                                               cifar_root):
    import mlflow

    done = train(checkout, cifar_root, *NEW, store="new.db")
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(f"sqlite:///{checkout / 'new.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert {k: params[k] for k in ("schedule.name", "schedule.end", "init.name", "init.scale",
                                   "model.name", "model.hidden", "data.name",
                                   "data.image_size")} == {
        "schedule.name": "linear", "schedule.end": "0.1", "init.name": "scaled_he",
        "init.scale": "0.5", "model.name": "mlp", "model.hidden": "16", "data.name": "stripes",
        "data.image_size": "8"}
    assert "test_acc" in run.data.metrics
    # init.scale reached the initialiser: the same draws, half the size.
    stds = [train(checkout, cifar_root, *NEW, f"init.scale={scale}", command=("-c", FIRST_WEIGHTS))
            for scale in (0.5, 1.0)]
    assert all(s.returncode == 0 for s in stds), stds[0].stderr[-3000:]
    half, whole = (float(s.stdout.split()[-1]) for s in stds)
    assert half == pytest.approx(whole / 2, rel=1e-6)


@pytest.mark.parametrize(("override", "message"), [
    ("init.scale=big", "init.scale"),  # typed from the signature
    ("+init.gain=2", "init.gain: unknown key; init takes name, scale, whiten_first_conv"),
    ("init.scale=-1", "init (scaled_he): scale must be > 0, got -1"),  # the initialiser asked
    ("schedule.end=2", "schedule (linear): end must be in [0, 1], got 2"),
    ("model.hidden=0", "model.hidden=0: mlp hidden must be >= 1, got 0"),  # the family's check
    ("model.hidden=many", "model.hidden"),
    ("data.download=true", "download"),  # CIFAR-10's key, not this dataset's
    ("data.image_size=small", "data.image_size"),
])
def test_the_new_definitions_are_typed_and_validated_from_themselves(checkout, cifar_root,
                                                                      override, message):
    refused = train(checkout, cifar_root, *NEW, override, store="refused_new.db")
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr[-2000:]
    assert not (checkout / "refused_new.db").exists()  # refused before any run was created
