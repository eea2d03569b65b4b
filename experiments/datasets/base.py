"""What every dataset shares: its config schema, its registry, and how a run loads it.

A dataset is a source of labelled images (CIFAR-10, a folder of images, ...): one schema
class, registered here by name, whose fields are its config keys (`data.<key>`) and whose
`load(seed)` returns `cnn.data.Splits`: uint8 (N, H, W, C) images and int64 labels for
training, validation and test. Normalisation, augmentation, the network's input shape
and its number of classes all follow from those.

`DataConfig` holds the keys every dataset shares; each dataset's schema subclasses it
with its own keys (Hydra merges a subclass into the `data` node the base types), so a
dataset accepts only the keys it uses.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from omegaconf import MISSING, OmegaConf

from cnn.data import Augmenter, Splits, check_classes, random_crop
from cnn.registry import Registry

DATASETS: Registry[type[DataConfig]] = Registry("dataset")


@dataclass
class AugmentConfig:
    crop_pad: int = 0  # pad by this many pixels, then crop back at a random offset; 0: off
    pad_mode: str = "reflect"  # reflect | zero
    flip: bool = False  # random horizontal flip
    cutout: int = 0  # zero a square of this side at a random centre, after crop and flip; 0: off


@dataclass
class DataConfig:
    """The keys every dataset shares; each dataset's schema subclasses it with its own."""

    name: str = MISSING  # the dataset, chosen with data=<name>
    n_train: int | None = None  # training images (stratified); None: all that remain
    n_val: int = 0  # validation images carved from the training set first; 0: none
    classes: list[int] | None = None  # labels to keep, e.g. [3, 5]; None: all of them
    split_seed: int | None = None  # None: drawn from trainer.seed's "split" stream
    normalize: bool = True  # per-channel standardisation fitted on training images; off: x/255
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    # Not a key: the number of classes, for checking data.classes before loading; None:
    # known only once the data is read.
    num_classes: ClassVar[int | None] = None

    # Not a key: the channels of the images the network gets (every dataset so far
    # gives RGB, grey images converted).
    channels: ClassVar[int] = 3

    @property
    def image_side(self) -> int:
        """The height and width of the images the network gets."""
        raise NotImplementedError(f"data={self.name} does not say its image size")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the images the network gets, as the model sees them."""
        return (self.image_side, self.image_side, self.channels)

    def problems(self) -> list[str]:
        """What is wrong with these values, each naming its key (checked before any run)."""
        found = []
        if self.n_train is not None and self.n_train < 1:
            found.append(f"data.n_train must be >= 1 or null (all), got {self.n_train}")
        if self.split_seed is not None and self.split_seed < 0:
            found.append(f"data.split_seed must be >= 0 or null, got {self.split_seed}")
        if self.n_val < 0:
            found.append(f"data.n_val must be >= 0, got {self.n_val}")
        if self.classes is not None and len(self.classes) == 1:
            found.append(f"data.classes={list(self.classes)} keeps one class: a classifier "
                         "needs at least two (one is learnt by always answering it)")
        elif self.classes is not None:
            try:
                check_classes(self.classes, self.num_classes or max(self.classes, default=0) + 1)
            except ValueError as e:
                found.append(f"data.{e}")
        try:  # the Augmenter checks its own arguments; ask it rather than repeat its rules
            Augmenter(**vars(self.augment))
        except (TypeError, ValueError) as e:
            found.append(f"data.augment: {e}")
        else:  # and a crop of one blank image of this size, whether the padding fits it
            side, pad = self.image_side, self.augment.crop_pad
            try:
                random_crop(np.zeros((1, side, side, 1), np.uint8), pad,
                            np.random.default_rng(0), self.augment.pad_mode)
            except ValueError as e:
                found.append(f"data.augment.crop_pad={pad} does not fit {side}x{side} "
                             f"images: {e}")
            if self.augment.cutout > side:
                found.append(f"data.augment.cutout={self.augment.cutout} is larger than the "
                             f"{side}x{side} images")
        return found

    def prepare(self) -> None:
        """Make sure the data can be read before any run is created (a sweep calls this
        once, so that its jobs do not all fetch it); nothing to do unless it is fetched."""

    def load(self, seed: int) -> Splits:
        """The images and labels of this config; `seed` draws the training/validation split."""
        raise NotImplementedError(f"data={self.name} does not say how to load it")


def registered() -> Registry[type[DataConfig]]:
    """The dataset registry, with every module of this package imported (they register)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{module.name}")
    return DATASETS


def data_config(node: Any) -> DataConfig:
    """The `data` node of a config as its dataset's schema object (chosen by `name`)."""
    schema = registered()[node.name]
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))


def load_splits(cfg: Any, generators: dict[str, np.random.Generator]) -> Splits:
    """The images and labels the config asks for, split with `data.split_seed` or, when
    that is null, a seed drawn from the run's "split" stream."""
    data = data_config(cfg.data)
    split_seed = data.split_seed
    if split_seed is None:
        split_seed = int(generators["split"].integers(2**31 - 1))
    return data.load(split_seed)
