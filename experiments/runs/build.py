"""From a config to everything a training run needs: data, network, optimiser, schedule.

Pure: no Hydra, no MLflow, no files written. `experiments.train` tracks what it builds,
and diagnostic or benchmark scripts can build the same run with

    from experiments.config import compose_config
    from experiments.pipeline import build_run
    run = build_run(compose_config(["model=vgg", "data.n_train=1000"]))
    cnn.training.fit(run.net, run.loss_fn, run.optimizer, run.schedule,
                     run.train_batches, run.epochs, val_batches=run.val_batches)

Every random draw comes from the generators of `cnn.rng.make_generators(trainer.seed)`,
one stream per purpose, so the same config gives the same run, draw for draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnn.data import Augmenter, BatchIterator, Normalizer, Splits, prepare_cifar10
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.network import Sequential
from cnn.optim import Optimizer, make_optimizer
from cnn.rng import make_generators
from cnn.schedules import Schedule, make_schedule
from experiments.config import validate

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass
class Run:
    """One training run, built and ready for `cnn.training.fit`.

    cfg: the config it was built from (validated).
    net, loss_fn, optimizer, schedule: the model and how it is trained.
    splits: the uint8 images and labels used (cnn.data.Splits).
    normalizer: the fitted per-channel Normalizer, or None if data.normalize is off.
    augmenter: the training Augmenter, or None when crop and flip are both off.
    transform: what maps a uint8 batch to the network's float input (normaliser or cast).
    generators: the run's random streams (init, split, shuffle, augment, dropout).
    train_batches: shuffled (and augmented) training batches, one epoch per iter().
    val_batches: validation batches, or None without a validation split.
    test_batches: test batches, never shuffled or augmented.
    epochs, steps_per_epoch, total_steps: the length of training in optimiser steps.
    """

    cfg: Any
    net: Sequential
    loss_fn: SoftmaxCrossEntropy
    optimizer: Optimizer
    schedule: Schedule
    splits: Splits
    normalizer: Normalizer | None
    augmenter: Augmenter | None
    transform: Transform
    generators: dict[str, np.random.Generator]
    train_batches: BatchIterator
    val_batches: BatchIterator | None
    test_batches: BatchIterator
    epochs: int
    steps_per_epoch: int
    total_steps: int


def _seed_from(stream: np.random.Generator) -> int:
    """An integer seed drawn from a stream, for functions that take an int seed."""
    return int(stream.integers(2**31 - 1))


def load_splits(cfg: Any, generators: dict[str, np.random.Generator]) -> Splits:
    """The images and labels the config asks for, by `data.name`.

    cifar10: cnn.data.prepare_cifar10; image_folder and digits: experiments.datasets.
    """
    data = cfg.data
    split_seed = data.split_seed if data.split_seed is not None else _seed_from(generators["split"])
    classes = None if data.classes is None else list(data.classes)
    if data.name in ("image_folder", "digits"):
        # Imported here: only these datasets need Pillow and scikit-learn.
        from experiments import datasets

        common = dict(image_size=data.image_size, test_fraction=data.test_fraction,
                      n_train=data.n_train, n_val=data.n_val, seed=split_seed, classes=classes)
        if data.name == "digits":
            return datasets.prepare_digits(**common)
        return datasets.prepare_image_folder(data.root, **common)
    return prepare_cifar10(
        data.root,
        n_train=data.n_train,
        n_val=data.n_val,
        seed=split_seed,
        classes=classes,
        download=data.download,
    )


class _OwnStream:
    """Adapts an Augmenter to BatchIterator's `augment(x, rng)` so it draws from its own stream.

    BatchIterator passes its shuffling generator; augmenting from a separate one means
    turning augmentation on or off does not change the order the images come in.
    """

    def __init__(self, augmenter: Augmenter, rng: np.random.Generator) -> None:
        self.augmenter, self.rng = augmenter, rng

    def __call__(self, x: np.ndarray, _shuffle_rng: np.random.Generator) -> np.ndarray:
        return self.augmenter(x, self.rng)


def make_optimizer_from(cfg_optim: Any) -> Optimizer:
    """The optimiser a config's `optim` node describes."""
    o = cfg_optim
    if o.name == "sgd":
        kwargs = dict(momentum=o.momentum, nesterov=o.nesterov)
    elif o.name in ("adam", "adamw"):
        kwargs = dict(betas=(o.beta1, o.beta2), eps=o.eps)
    elif o.name == "rmsprop":
        kwargs = dict(alpha=o.alpha, eps=o.eps, momentum=o.momentum)
    else:
        raise ValueError(f"unknown optimiser {o.name!r}")
    return make_optimizer(o.name, lr=o.lr, weight_decay=o.weight_decay, **kwargs)


def make_schedule_from(cfg_schedule: Any, lr: float, steps_per_epoch: int, epochs: int) -> Schedule:
    """The schedule a config's `schedule` node describes; epochs are turned into steps."""
    s = cfg_schedule
    kwargs: dict[str, Any] = {"warmup_steps": round(s.warmup_epochs * steps_per_epoch)}
    if s.name == "step":
        kwargs.update(step_size=max(s.step_epochs * steps_per_epoch, 1), gamma=s.gamma)
    elif s.name == "cosine":
        kwargs.update(min_lr=s.min_lr)
    elif s.name == "onecycle":
        kwargs.update(pct_start=s.pct_start, div_factor=s.div_factor,
                      final_div_factor=s.final_div_factor,
                      momentum_range=None if s.momentum_range is None
                      else tuple(s.momentum_range))
    return make_schedule(s.name, lr, steps_per_epoch * epochs, **kwargs)


def build_run(cfg: Any, *, splits: Splits | None = None) -> Run:
    """Build the run a config describes (a composed DictConfig or a TrainConfig).

    `splits` skips loading when the caller already has the data for this config
    (e.g. a benchmark building several runs); it must be what `load_splits` would give.
    Raises experiments.config.ConfigError for values the run cannot use.
    """
    validate(cfg)
    generators = make_generators(cfg.trainer.seed)
    if splits is None:
        splits = load_splits(cfg, generators)

    dtype = np.dtype(cfg.trainer.dtype)
    image_shape = tuple(splits.x_train.shape[1:])
    net = build_model(
        cfg.model.name,
        num_classes=splits.num_classes,
        input_shape=image_shape,
        init=cfg.init.name,
        init_std=cfg.init.std,
        seed=_seed_from(generators["init"]),
        dtype=dtype,
    )

    # Statistics from the training images only: nothing about validation or test leaks in.
    normalizer = Normalizer().fit(splits.x_train) if cfg.data.normalize else None
    transform: Transform = normalizer if normalizer is not None else _scale_to_unit
    aug = cfg.data.augment
    augmenter = None
    if aug.crop_pad or aug.flip:
        augmenter = Augmenter(aug.crop_pad, aug.pad_mode, aug.flip)

    batch, eval_batch = cfg.trainer.batch_size, cfg.trainer.eval_batch_size
    train_batches = BatchIterator(
        splits.x_train, splits.y_train, batch,
        transform=transform,
        augment=None if augmenter is None else _OwnStream(augmenter, generators["augment"]),
        shuffle=True,
        rng=generators["shuffle"],
    )
    val_batches = None
    if len(splits.x_val):
        val_batches = BatchIterator(splits.x_val, splits.y_val, eval_batch, transform=transform)
    test_batches = BatchIterator(splits.x_test, splits.y_test, eval_batch, transform=transform)

    steps_per_epoch = len(train_batches)
    epochs = cfg.trainer.epochs
    optimizer = make_optimizer_from(cfg.optim)
    schedule = make_schedule_from(cfg.schedule, cfg.optim.lr, steps_per_epoch, epochs)
    return Run(
        cfg=cfg,
        net=net,
        loss_fn=SoftmaxCrossEntropy(cfg.trainer.label_smoothing),
        optimizer=optimizer,
        schedule=schedule,
        splits=splits,
        normalizer=normalizer,
        augmenter=augmenter,
        transform=transform,
        generators=generators,
        train_batches=train_batches,
        val_batches=val_batches,
        test_batches=test_batches,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * epochs,
    )


def _scale_to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 images to float32 in [0, 1], for runs without normalisation."""
    return x.astype(np.float32) / np.float32(255.0)


@dataclass
class Evaluation:
    loss: float
    acc: float
    labels: np.ndarray  # (N,) true classes
    predictions: np.ndarray  # (N,) predicted classes


def evaluate_with_predictions(
    net: Sequential, loss_fn: SoftmaxCrossEntropy, batches: BatchIterator
) -> Evaluation:
    """Loss, accuracy and every prediction in one pass (cnn.training.evaluate keeps none).

    The loss is averaged exactly as cnn.training.evaluate does, batch means weighted by size.
    """
    total_loss, labels, predictions = 0.0, [], []
    for x, y in batches:
        logits = net.forward(x, training=False)
        total_loss += loss_fn.forward(logits, y) * len(y)
        labels.append(y)
        predictions.append(logits.argmax(axis=1))
    y_true, y_pred = np.concatenate(labels), np.concatenate(predictions)
    return Evaluation(total_loss / len(y_true), float((y_true == y_pred).mean()), y_true, y_pred)
