"""What every dataset shares: its config schema, its registry, and how a run loads it.

A dataset is one schema class, registered here by name, whose fields are its config keys
(`data.<key>`) and whose `load(seed)` returns `cnn.data.Splits`: uint8 (N, H, W, C)
images and int64 labels for training, validation and test. Normalisation, augmentation,
the network's input shape and its number of classes all follow from those.

`DataConfig` is CIFAR-10's schema and holds the keys every dataset shares; other
datasets subclass it (Hydra merges a subclass into the `data` node the base types).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from cnn.data import (
    OFFICIAL_MD5,
    OFFICIAL_URL,
    Augmenter,
    Splits,
    check_classes,
    load_cifar10,
    prepare_cifar10,
    random_crop,
)
from cnn.registry import Registry

DATASETS: Registry[type[DataConfig]] = Registry("dataset")


@dataclass
class AugmentConfig:
    crop_pad: int = 0  # pad by this many pixels, then crop back at a random offset; 0: off
    pad_mode: str = "reflect"  # reflect | zero
    flip: bool = False  # random horizontal flip


@DATASETS.register("cifar10")
@dataclass
class DataConfig:
    """CIFAR-10's schema, and the keys every dataset shares (the others subclass it)."""

    name: str = "cifar10"  # the dataset, chosen with data=<name>
    root: str | None = None  # None: $CIFAR10_ROOT, else ./data
    download: bool = True  # fetch the archive from url if nothing is under root; false: never
    url: str = OFFICIAL_URL  # where to download it from (https://, file://)
    md5: str = OFFICIAL_MD5  # the archive's md5, checked before it is used
    n_train: int | None = None  # training images (stratified); None: all that remain
    n_val: int = 0  # validation images carved from the training set first; 0: none
    classes: list[int] | None = None  # labels to keep, e.g. [3, 5]; None: all ten
    split_seed: int | None = None  # None: drawn from trainer.seed's "split" stream
    normalize: bool = True  # per-channel standardisation fitted on training images; off: x/255
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    num_classes = 10  # for checking data.classes before loading; None: known only then

    @property
    def image_side(self) -> int:
        """The height and width of the images the network gets (CIFAR-10's are 32x32)."""
        return 32

    def problems(self) -> list[str]:
        """What is wrong with these values, each naming its key (checked before any run)."""
        found = []
        if self.n_train is not None and self.n_train < 1:
            found.append(f"data.n_train must be >= 1 or null (all), got {self.n_train}")
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
        if self.name != "cifar10":
            if self.download:
                found.append(f"data.download applies to cifar10 only, not data={self.name}")
            if self.url != OFFICIAL_URL or self.md5 != OFFICIAL_MD5:
                found.append(f"data.url and data.md5 apply to cifar10 only, not "
                             f"data={self.name}")
        return found

    def prepare(self) -> None:
        """Make sure the data can be read, downloading it if allowed, before any run is
        created: a sweep calls this once, so that its jobs do not all download it."""
        load_cifar10(self.root, download=self.download, url=self.url, md5=self.md5)

    def load(self, seed: int) -> Splits:
        """The images and labels of this config; `seed` draws the training/validation split."""
        return prepare_cifar10(self.root, n_train=self.n_train, n_val=self.n_val, seed=seed,
                               classes=self.classes, download=self.download, url=self.url,
                               md5=self.md5)


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
