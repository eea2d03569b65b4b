"""Image files classified by a logged model: the top-k classes and probabilities of each.

Each image is read as for training on an image folder (experiments.datasets.images): any
size and colour mode, resized to the model's input. `predict_files` does the work of
`python -m experiments.predict`; what it prints, per image:

    cat.png
       1. cat         0.9123
       2. dog         0.0514
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments.datasets.images import load_images


def input_shape(model: Any) -> tuple[int, int, int]:
    """(H, W, C) of the images the model takes, from its signature (-1, H, W, C)."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.is_tensor_spec():
        raise ValueError("the model has no image tensor signature; was it logged by "
                         "experiments.train?")
    shape = tuple(int(n) for n in schema.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(f"the model takes tensors of shape {schema.inputs[0].shape}, not images")
    return shape  # type: ignore[return-value]


def class_names(model: Any, num_classes: int) -> list[str]:
    """The names logged with the model; models logged before they were stored get numbers."""
    names = (model.metadata.metadata or {}).get("class_names")
    return list(names) if names and len(names) == num_classes else [
        str(i) for i in range(num_classes)]


def top_k(probs: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row of probs (N, K): the k most probable (class, probability), most probable first.

    A stable sort keeps ties in class order, so the output does not vary between runs.
    """
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(int(c), float(row[c])) for c in idx] for row, idx in zip(probs, order, strict=True)]


def format_predictions(path: Path, ranked: list[tuple[int, float]], names: list[str]) -> str:
    width = max(len(names[c]) for c, _ in ranked)
    lines = [str(path)]
    lines += [f"  {rank:2d}. {names[c]:<{width}}  {p:.4f}" for rank, (c, p) in
              enumerate(ranked, start=1)]
    return "\n".join(lines)


def predict_files(model: Any, paths: Sequence[Path], k: int) -> list[str]:
    """The top-k report of each image file, from a loaded pyfunc model.

    Raises CorruptDatasetError naming a file that cannot be read as an image.
    """
    probs = np.asarray(model.predict(load_images(list(paths), input_shape(model))))
    names = class_names(model, probs.shape[1])
    ranked = top_k(probs, min(k, probs.shape[1]))
    return [format_predictions(path, r, names) for path, r in zip(paths, ranked, strict=True)]


class ModelLoadError(RuntimeError):
    """The model URI cannot be loaded; the message is one line naming the URI."""


def predict_uri(model_uri: str, paths: Sequence[Path], k: int) -> list[str]:
    """`predict_files` with the model at `model_uri`, which MLflow downloads into a
    temporary folder removed afterwards (its own default folder would be left behind, a
    copy of the model per call).

    Raises ModelLoadError if the model cannot be loaded, CorruptDatasetError or ValueError
    for an image it cannot classify.
    """
    check_model_folder(model_uri)  # before MLflow copies a local folder to a temporary one
    with tempfile.TemporaryDirectory(prefix="predict-model-") as folder:
        return predict_files(load_model(model_uri, folder), paths, k)


def check_model_folder(model_uri: str) -> None:
    """ModelLoadError if `model_uri` is a local path (or file:// URI) that is not a model
    folder, one holding an MLmodel file; other URIs are MLflow's to check."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(model_uri)
    if parsed.scheme not in ("", "file") or not model_uri.strip():  # load_model: empty
        return
    path = Path(unquote(parsed.path) if parsed.scheme else model_uri).expanduser()
    if not path.exists():
        raise ModelLoadError(f"cannot load the model {model_uri!r}: no such folder {path} "
                             "(give runs:/<run id>/model, models:/<model id> or a model folder)")
    if not (path / "MLmodel").is_file():
        what = "a folder" if path.is_dir() else "a file"
        raise ModelLoadError(f"cannot load the model {model_uri!r}: {path} is {what} with no "
                             "MLmodel file, not a logged model's folder")


def load_model(model_uri: str, folder: str) -> Any:
    """The pyfunc model at `model_uri`, its files downloaded into `folder`."""
    import mlflow

    if not model_uri.strip():
        raise ModelLoadError("the model URI is empty: give runs:/<run id>/model, "
                             "models:/<model id> or a model folder")
    try:
        return mlflow.pyfunc.load_model(model_uri, dst_path=folder)
    except Exception as e:
        # Each store fails its own way (a missing client library for s3:// or gs://, an
        # unpacking error for a bare http:// URL): one line, with the error's type.
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        hint = ""
        if isinstance(e, ImportError):
            hint = " (reading this kind of URI needs a package that is not installed)"
        elif model_uri.startswith(("http://", "https://")):
            hint = (" (for a model on a tracking server, give runs:/<run id>/model and "
                    "--tracking-uri http://...)")
        raise ModelLoadError(f"cannot load the model {model_uri!r}: "
                             f"{type(e).__name__}: {first}{hint}") from e
