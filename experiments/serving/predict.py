"""Image files classified by a logged model: the top-k classes and probabilities of each.

Each image is read as for training on an image folder (experiments.datasets.images): any
size and colour mode, resized to the model's input. `predict_files` does the work of
`python -m experiments.predict`; what it prints, per image:

    cat.png
       1. cat         0.9123
       2. dog         0.0514
"""

from __future__ import annotations

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
