"""CIFAR-10 data pipeline: loading, splitting, normalising, augmenting and batching.

Everything here is NumPy and the standard library; images are channels-last uint8
(N, 32, 32, 3) until a BatchIterator turns each batch into float32.
"""

from cnn.data.augment import Augmenter, cutout, random_crop, random_flip
from cnn.data.cifar10 import (
    OFFICIAL_MD5,
    OFFICIAL_URL,
    Cifar10,
    load_cifar10,
    prepare_cifar10,
    resolve_root,
)
from cnn.data.download import download, md5sum
from cnn.data.errors import (
    ChecksumError,
    CorruptDatasetError,
    DatasetNotFoundError,
    DownloadError,
    UnsafeArchiveError,
    UnsafePickleError,
)
from cnn.data.extract import extract_tar
from cnn.data.loader import BatchIterator
from cnn.data.preprocess import Normalizer, to_unit_range
from cnn.data.safe_pickle import SafeUnpickler, load_pickle
from cnn.data.splits import Splits, check_classes, select_classes, stratified_split

__all__ = [
    "OFFICIAL_MD5",
    "OFFICIAL_URL",
    "Augmenter",
    "BatchIterator",
    "ChecksumError",
    "Cifar10",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "Normalizer",
    "SafeUnpickler",
    "Splits",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "cutout",
    "download",
    "extract_tar",
    "load_cifar10",
    "load_pickle",
    "md5sum",
    "prepare_cifar10",
    "random_crop",
    "random_flip",
    "resolve_root",
    "check_classes",
    "select_classes",
    "stratified_split",
    "to_unit_range",
]
