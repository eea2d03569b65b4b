"""What a tracked run logs besides its per-epoch metrics: the data it used, and at the
end its test results, figures, weights and model."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import mlflow
import numpy as np
from omegaconf import OmegaConf

from cnn.layers import Conv2D
from cnn.network import Sequential
from cnn.training import Evaluation, evaluate
from experiments.config.validate import group_args
from experiments.reporting import run_figures
from experiments.runs.build import Run
from experiments.serving.pyfunc_model import log_pyfunc_model
from experiments.tracking import tags
from experiments.tracking.metadata import log_safely

log = logging.getLogger(__name__)


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    """8 hex digits of sha256 over the images and labels, read in place. MLflow's own
    digest flattens the images into a copy first: 147 MB more at the peak for 50,000."""
    h = hashlib.sha256(np.ascontiguousarray(x).data)
    h.update(np.ascontiguousarray(y).data)
    return h.hexdigest()[:8]


def log_datasets(run: Run) -> None:
    """Record the data actually used as MLflow dataset inputs (shown on the run's page)."""
    splits = run.splits
    parts = [("train", splits.x_train, splits.y_train, "training"),
             ("val", splits.x_val, splits.y_val, "validation"),
             ("test", splits.x_test, splits.y_test, "testing")]
    for part, x, y, context in parts:
        if not len(x):
            continue
        with warnings.catch_warnings():
            # MLflow registers the local-folder source type twice and warns that a path
            # "can be interpreted in multiple ways"; both ways are the same class.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
            dataset = mlflow.data.from_numpy(x, targets=y, source=str(splits.source),
                                             name=f"{run.cfg.data.name}-{part}",
                                             digest=_digest(x, y))
        log_safely(f"the {context} dataset", mlflow.log_input, dataset, context=context)


def first_conv_weights(net: Sequential) -> np.ndarray | None:
    """The weights (KH, KW, C, F) of the first convolution, inside a block or not; None for
    a network without one (a custom stack of dense layers)."""
    return next((leaf.params["W"] for _, leaf in net.named_leaves()
                 if isinstance(leaf, Conv2D)), None)


def _evaluate_as_tested(run: Run) -> tuple[Evaluation, dict[str, float]]:
    """The test Evaluation of the weights and views the run is tested with, and the
    accuracies each ingredient's absence would give ({split}_acc_without_average,
    {split}_acc_without_flip, {split}_acc_without_translate). With a validation split,
    validation is measured the way test is (final_val_loss, final_val_acc), so a choice
    made on it is made on the quantity that is reported. Leaves the weight average, if
    any, in run.net."""
    splits = {"test": run.test_batches}
    if run.val_batches is not None:
        splits["final_val"] = run.val_batches
    views = {"flip": run.test_flip, "translate": run.test_translate}  # as tested
    off = {"flip": False, "translate": 0}

    def accuracy(batches: Iterable, **chosen) -> float:
        return evaluate(run.net, run.loss_fn, batches, **chosen).acc

    accuracies: dict[str, float] = {}
    if run.average is not None:
        for split, batches in splits.items():
            accuracies[f"{split}_acc_without_average"] = accuracy(batches, **views)
        run.average.copy_to()
    for name, on in views.items():
        if on:
            for split, batches in splits.items():
                accuracies[f"{split}_acc_without_{name}"] = accuracy(
                    batches, **{**views, name: off[name]})
    if "final_val" in splits:
        val = evaluate(run.net, run.loss_fn, run.val_batches, **views)
        accuracies.update(final_val_loss=val.loss, final_val_acc=val.acc)
    return evaluate(run.net, run.loss_fn, run.test_batches, **views), accuracies


def log_test_results(run: Run, name: str) -> tuple[float, float]:
    """Evaluate on the test set; log the loss, accuracy, confusion matrix, first-layer
    filters, weights and (with tracking.log_model) the model. Returns (loss, accuracy).

    With a weight average, the average is what is tested, logged and saved (it replaces the
    trained weights in run.net); with test_flip and test_translate, the test logits are
    averaged over mirror images and shifted images. Each also logs the accuracy without it
    (test_acc_without_average, test_acc_without_flip, test_acc_without_translate), which is
    what switching it off would give, since none changes training. With a validation
    split, final_val_loss and final_val_acc (with the accuracy's ablations) are validation
    measured the same way.
    """
    result, accuracies = _evaluate_as_tested(run)
    mlflow.log_metrics({"test_loss": result.loss, "test_acc": result.acc, **accuracies},
                       step=run.epochs)
    log.info("test loss %.4f, test accuracy %.4f %s", result.loss, result.acc, accuracies or "")

    counts = run_figures.confusion_matrix(result.labels, result.predictions,
                                          run.splits.num_classes)
    mlflow.log_figure(run_figures.confusion_figure(counts, run.splits.class_names, name),
                      "figures/confusion_matrix.png")
    filters = first_conv_weights(run.net)
    if filters is not None:
        mlflow.log_figure(run_figures.filters_figure(filters, f"{name}: first-layer filters"),
                          "figures/first_layer_filters.png")
    mlflow.log_text(OmegaConf.to_yaml({"labels": list(run.splits.class_names),
                                       "counts": counts.tolist()}), "confusion_matrix.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.npz"
        run.net.save(path)
        mlflow.log_artifact(str(path))
    if run.cfg.tracking.log_model:
        info = log_pyfunc_model(run.net, run.cfg.model.name, run.normalizer,
                                run.splits.class_names, knobs=group_args(run.cfg.model))
        # runs:/<run_id>/model works too; this URI names the model itself.
        log_safely("the model URI tag", mlflow.set_tag, tags.MODEL_URI, info.model_uri)
    return result.loss, result.acc
