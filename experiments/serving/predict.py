"""Classify image files with a logged model: the top-k classes and probabilities of each.

    python -m experiments.predict runs:/<run id>/model cat.png dog.jpg
    python -m experiments.predict models:/<model id> digit.png --top-k 3

MODEL_URI is any URI MLflow loads a model from; `runs:/` and `models:/` URIs are looked
up in $MLFLOW_TRACKING_URI, else ./mlflow.db, as training writes them (or --tracking-uri).
Each image is read as for training on an image folder (experiments.datasets): any size
and colour mode, resized to the model's input. Output, per image:

    cat.png
       1. cat         0.9123
       2. dog         0.0514
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import cnn


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.predict",
        description="Print the top-k classes, with probabilities, of each image file.")
    parser.add_argument("model_uri", metavar="MODEL_URI",
                        help="a logged model, e.g. runs:/<run id>/model or models:/<model id>")
    parser.add_argument("images", metavar="IMAGE", nargs="+", type=Path,
                        help="image files (PNG, JPEG, ...)")
    parser.add_argument("-k", "--top-k", type=int, default=3,
                        help="how many classes to print per image (default 3)")
    parser.add_argument("--tracking-uri", default=None,
                        help="the MLflow store runs:/ and models:/ URIs are looked up in "
                             "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--version", action="version",
                        version=f"numpy-cnn-lab {cnn.__version__}")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    return args


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m experiments.predict`; returns the exit status."""
    args = parse_args(argv)
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        print(f"predict: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2

    # MLflow's download bars would be mixed into the predictions on the terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported after the arguments are checked: MLflow takes seconds to import.
    import mlflow
    from mlflow.exceptions import MlflowException

    from cnn.data.errors import CorruptDatasetError
    from experiments.datasets import load_images
    from experiments.tracking import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(args.tracking_uri))
    try:
        model = mlflow.pyfunc.load_model(args.model_uri)
    except (MlflowException, OSError) as e:
        print(f"predict: cannot load the model {args.model_uri}: {e}", file=sys.stderr)
        return 1
    shape = input_shape(model)
    try:
        images = load_images(args.images, shape)
    except CorruptDatasetError as e:
        print(f"predict: {e}", file=sys.stderr)
        return 1
    probs = np.asarray(model.predict(images))
    names = class_names(model, probs.shape[1])
    for path, ranked in zip(args.images, top_k(probs, min(args.top_k, probs.shape[1])),
                            strict=True):
        print(format_predictions(path, ranked, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
