"""From a config to everything a training run needs: data, network, optimiser, schedule.

Pure: no Hydra, no MLflow, no files written. `experiments.runs.tracked` tracks what it
builds, and diagnostic or benchmark scripts can build the same run with

    from experiments.config import compose_config
    from experiments.runs.build import build_run
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

from cnn.averaging import WeightAverage
from cnn.data import Augmenter, BatchIterator, Normalizer, Splits, to_unit_range
from cnn.losses import SoftmaxCrossEntropy
from cnn.models import build_model
from cnn.network import Sequential
from cnn.optim import Optimizer, make_optimizer
from cnn.rng import make_generators
from cnn.schedules import Schedule, make_schedule
from cnn.whitening import whiten_first_conv
from experiments.config import validate
from experiments.config.validate import group_args, init_args
from experiments.datasets.base import load_splits

Transform = Callable[[np.ndarray], np.ndarray]

# Training images whose patches init.whiten_first_conv whitens: enough for a (27, 27)
# covariance many times over, and a bounded float copy (60 MB) on the full data set.
WHITENING_IMAGES = 5000


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
    average: the moving average of the weights (trainer.weight_average > 0), else None.
    test_flip: whether evaluation averages each image's logits with its mirror image's.
    test_translate: the shift in pixels of evaluation's shifted views (0: none).
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
    average: WeightAverage | None = None
    test_flip: bool = False
    test_translate: int = 0


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
    """The optimiser a config's `optim` node describes: its keys are the class's arguments."""
    return make_optimizer(cfg_optim.name, **group_args(cfg_optim))


def make_schedule_from(cfg_schedule: Any, lr: float, steps_per_epoch: int, epochs: int) -> Schedule:
    """The schedule a config's `schedule` node describes; its warm-up is given in epochs."""
    s = cfg_schedule
    return make_schedule(s.name, lr, steps_per_epoch * epochs, steps_per_epoch=steps_per_epoch,
                         warmup_steps=round(s.warmup_epochs * steps_per_epoch),
                         **group_args(s, "warmup_epochs"))


def build_run(cfg: Any, *, splits: Splits | None = None, validated: bool = False) -> Run:
    """Build the run a config describes (a composed DictConfig or a TrainConfig).

    `splits` skips loading when the caller already has the data for this config
    (e.g. a benchmark building several runs); it must be what `load_splits` would give.
    Raises experiments.config.ConfigError for values the run cannot use, unless
    `validated` says the caller has already validated this config (a tracked run does,
    before its MLflow run exists), so that it is validated once. The network is built
    here, once.
    """
    if not validated:
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
        init_knobs=init_args(cfg.init),  # std, gain, ...
        seed=int(generators["init"].integers(2**31 - 1)),
        dtype=dtype,
        **group_args(cfg.model),  # the family's knobs (depth, widths, layers, ...)
    )

    # Statistics from the training images only: nothing about validation or test leaks in.
    normalizer = Normalizer().fit(splits.x_train) if cfg.data.normalize else None
    transform: Transform = normalizer if normalizer is not None else to_unit_range
    if cfg.init.whiten_first_conv:
        whiten_first_conv(net, transform(splits.x_train[:WHITENING_IMAGES]).astype(dtype))
    aug = cfg.data.augment
    augmenter = None
    if aug.crop_pad or aug.flip or aug.cutout:
        augmenter = Augmenter(aug.crop_pad, aug.pad_mode, aug.flip, aug.cutout)

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
    decay = cfg.trainer.weight_average
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
        average=WeightAverage(net, decay) if decay else None,
        test_flip=cfg.trainer.test_flip,
        test_translate=cfg.trainer.test_translate,
    )
