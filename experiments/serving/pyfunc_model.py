"""The trained network as an MLflow pyfunc model: uint8 images in, class probabilities out.

    model = mlflow.pyfunc.load_model("runs:/<run_id>/model")
    probs = model.predict(images)      # images: uint8 (N, H, W, C) -> float32 (N, K)
    model.metadata.metadata            # {"input_shape": [H, W, C], "class_names": [...]}

(H, W, C) and K are the training data's: (32, 32, 3) and 10 for CIFAR-10.

The model folder holds the weights (.npz), a small JSON file with the architecture
(the family and its knobs, e.g. resnet with depth 20), the normalisation statistics and
the class names, and a copy of the `cnn` package and
of this file, so it loads without this repository and without network access.

It is logged as MLflow "model from code": a three-line script that names the model
class is stored with it, rather than a pickled object, so loading it runs only that
script and the copied code.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

import cnn
from cnn.data import Normalizer, to_unit_range
from cnn.models import build_model
from cnn.network import Sequential

PREDICT_BATCH = 256


def model_meta(
    net: Sequential,
    architecture: str,
    normalizer: Normalizer | None,
    class_names: tuple[str, ...],
    knobs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What, besides the weights, is needed to rebuild the network and prepare its input."""
    return {
        "architecture": architecture,
        "knobs": dict(knobs or {}),  # the family's knobs, as cnn.models.build_model takes them
        "input_shape": list(net.input_shape),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "dtype": str(net.dtype),
        # Without normalisation the harness scales pixels to [0, 1] (cnn.data.to_unit_range).
        "normalizer": None if normalizer is None else normalizer.state(),
        "cnn_version": cnn.__version__,
    }


class CifarClassifier(mlflow.pyfunc.PythonModel):
    """Rebuilds the network from its artifacts and maps images to probabilities (N, K)."""

    def load_context(self, context: Any) -> None:
        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        self.input_shape = tuple(meta["input_shape"])
        self.net = build_model(
            meta["architecture"],
            num_classes=meta["num_classes"],
            input_shape=self.input_shape,
            dtype=np.dtype(meta["dtype"]),
            # Models logged before families had knobs have none: the defaults built them.
            **meta.get("knobs", {}),
        )
        self.net.load(context.artifacts["weights"])
        state = meta["normalizer"]
        self.normalizer = None if state is None else Normalizer.from_state(state)
        self.class_names = meta["class_names"]

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> np.ndarray:
        """uint8 images (N, H, W, C) -> float32 probabilities (N, K).

        MLflow checks the input against the signature first, and turns a DataFrame with
        one column of (H, W, C) arrays into such an array.
        """
        x = np.asarray(model_input)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(f"expected images (N, {self.input_shape}), got shape {x.shape}")
        x = x.astype(np.uint8, copy=False)
        x = self.normalizer(x) if self.normalizer is not None else to_unit_range(x)
        return self.net.predict(x.astype(self.net.dtype, copy=False), batch_size=PREDICT_BATCH)


def signature(input_shape: tuple[int, ...], num_classes: int) -> ModelSignature:
    """uint8 images (-1, H, W, C) in, float32 probabilities (-1, K) out."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, *input_shape))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]),
    )


def _copy_code(target: Path) -> list[str]:
    """Copy the `cnn` package and this module, in its package, into `target`; return the
    paths to ship.

    Only .py files are copied (no caches), so the model carries exactly the code it runs.
    """
    cnn_src = Path(cnn.__file__).parent
    shutil.copytree(cnn_src, target / "cnn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    experiments_dir = target / "experiments"
    serving_dir = experiments_dir / "serving"
    serving_dir.mkdir(parents=True)
    for folder in (experiments_dir, serving_dir):
        (folder / "__init__.py").write_text('"""Only the pyfunc model, shipped with it."""\n')
    shutil.copy(Path(__file__), serving_dir / Path(__file__).name)
    return [str(target / "cnn"), str(experiments_dir)]


# The script MLflow runs when it loads the model; written at logging time, never imported.
_MODEL_SCRIPT = """\
import mlflow
from experiments.serving.pyfunc_model import CifarClassifier

mlflow.models.set_model(CifarClassifier())
"""


def log_pyfunc_model(
    net: Sequential,
    architecture: str,
    normalizer: Normalizer | None,
    class_names: tuple[str, ...],
    name: str = "model",
    knobs: Mapping[str, Any] | None = None,
) -> Any:
    """Log `net`, built as `architecture` with `knobs`, to the active run as a pyfunc model
    called `name`; returns its ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        weights, meta = folder / "weights.npz", folder / "model.json"
        net.save(weights)
        meta.write_text(
            json.dumps(model_meta(net, architecture, normalizer, class_names, knobs), indent=2))
        code = _copy_code(folder / "code")
        script = folder / "cifar_classifier.py"
        script.write_text(_MODEL_SCRIPT)
        with warnings.catch_warnings():
            # The signature is given explicitly, so the input example MLflow asks for
            # (to infer one) would add nothing.
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(script),
                artifacts={"weights": str(weights), "meta": str(meta)},
                code_paths=code,
                signature=signature(tuple(net.input_shape), len(class_names)),
                # In the MLmodel file, so a caller can prepare images and name classes
                # without loading the model's code (experiments.predict reads it).
                metadata={"input_shape": list(net.input_shape),
                          "class_names": list(class_names)},
                # Pinned explicitly: inferring them would load the model in a subprocess.
                pip_requirements=[f"numpy=={np.__version__}", f"mlflow=={mlflow.__version__}"],
            )
