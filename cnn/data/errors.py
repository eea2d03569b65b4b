"""Exceptions raised by the CIFAR-10 data pipeline.

Each one carries a single message that names the file, URL or value involved
and says what to do next, so a failed run can be fixed from its log alone.
"""

import pickle


class DatasetNotFoundError(FileNotFoundError):
    """No CIFAR-10 data (folder or archive) under the data root, and no download asked for."""


class CorruptDatasetError(ValueError):
    """A CIFAR-10 file exists but is incomplete, truncated or holds unexpected contents."""


class UnsafePickleError(CorruptDatasetError, pickle.UnpicklingError):
    """A pickle asked for a global outside the small allow-list the CIFAR-10 format needs.

    Subclasses CorruptDatasetError so that callers handling bad data catch it too,
    and pickle.UnpicklingError because that is what it is to the pickle machinery.
    """


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target folder, or is a device or link."""


class DownloadError(OSError):
    """A download failed after its retries, or cannot start (no network, bad URL, HTTP error)."""


class ChecksumError(DownloadError):
    """A downloaded file's md5 differs from the expected one; the file has been deleted."""
