"""`data=cifar10`: CIFAR-10 in its official Python format, found under `root` or downloaded
there (cnn.data.cifar10 reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cnn.data import OFFICIAL_MD5, OFFICIAL_URL, Splits, load_cifar10, prepare_cifar10
from experiments.datasets.base import DATASETS, DataConfig


@DATASETS.register("cifar10")
@dataclass
class Cifar10DataConfig(DataConfig):
    """CIFAR-10: the keys every dataset shares, and where its archive is found or fetched."""

    name: str = "cifar10"
    root: str | None = None  # None: $CIFAR10_ROOT, else ./data
    download: bool = True  # fetch the archive from url if nothing is under root; false: never
    url: str = OFFICIAL_URL  # where to download it from (https://, file://)
    md5: str = OFFICIAL_MD5  # the archive's md5, checked before it is used

    num_classes: ClassVar[int | None] = 10

    @property
    def image_side(self) -> int:
        return 32

    def prepare(self) -> None:
        """Find the data, downloading it if allowed, before any run is created."""
        load_cifar10(self.root, download=self.download, url=self.url, md5=self.md5)

    def load(self, seed: int) -> Splits:
        return prepare_cifar10(self.root, n_train=self.n_train, n_val=self.n_val, seed=seed,
                               classes=self.classes, download=self.download, url=self.url,
                               md5=self.md5)
