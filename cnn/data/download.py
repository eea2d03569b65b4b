"""Downloading a file with retries and an md5 check (extracting is cnn.data.extract)."""

import errno
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnn.data.errors import (
    ChecksumError,
    DownloadError,
)

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# errno values that mean "this machine cannot reach the host at all": retrying will not help,
# so these fail at once instead of after the backoff.
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}
)


def _by_hand_hint(url: str) -> str:
    return (
        f"Download {url} by hand where there is network access, then put the archive (or its "
        "extracted cifar-10-batches-py/ folder) in a folder that the environment variable "
        "CIFAR10_ROOT or the config value data.root points to."
    )


class _RetryableError(Exception):
    """One transfer attempt failed in a way that another attempt may fix."""


def md5sum(path: str | os.PathLike) -> str:
    """Return the hex md5 of the file at `path`, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed) inside the block, so that
    processes downloading the same file (the jobs of a parallel sweep) fetch it once: the
    others wait, then find it in place."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; the atomic rename still keeps `dest` whole
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            # Removed so that the data root stays clean. A process already waiting on it
            # then finds the file in place; after a failed download two might both try
            # again, each into its own temporary file, which is still safe.
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # optional: only the bar needs it
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)


def _open(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": "numpy-cnn-lab"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code in (408, 429):
            raise _RetryableError(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(
            f"{url}: the server answered HTTP {e.code} {e.reason}. Check the URL. "
            + _by_hand_hint(url)
        ) from e
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, socket.gaierror) or (
            isinstance(reason, OSError) and reason.errno in _UNREACHABLE_ERRNOS
        ):
            raise DownloadError(
                f"Cannot reach the server for {url} ({reason}). No network access? "
                + _by_hand_hint(url)
            ) from e
        if isinstance(reason, FileNotFoundError):
            raise DownloadError(f"{url}: no such file ({reason}).") from e
        raise _RetryableError(f"cannot open the URL: {reason}") from e
    except ValueError as e:  # urllib's answer to a malformed or unsupported URL
        raise DownloadError(f"{url!r} is not a URL urllib can open: {e}") from e
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _RetryableError(f"cannot open the URL: {e!r}") from e


def _fetch_once(url: str, folder: Path, name: str, timeout: float, progress: bool) -> Path:
    """Stream `url` into a new temporary file in `folder`; return its path.

    The temporary file lives beside the destination so the final os.replace is an atomic
    rename on one file system; it is deleted on any failure.
    """
    response = _open(url, timeout)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    except OSError:
        response.close()
        raise
    tmp = Path(tmp_name)
    bar = None
    try:
        with response, os.fdopen(fd, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            bar = _progress_bar(expected, name, progress)
            received = 0
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            except http.client.IncompleteRead as e:
                raise _RetryableError(
                    f"transfer cut short after {received + len(e.partial)} bytes"
                ) from e
            except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
                raise _RetryableError(f"transfer failed after {received} bytes: {e!r}") from e
            # urllib returns b"" when the server closes early, so the length check is the
            # only sign of a truncated body.
            if expected is not None and received != expected:
                raise _RetryableError(
                    f"transfer cut short: received {received} of {expected} bytes"
                )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return tmp


def download(
    url: str,
    dest: Path,
    md5: str,
    *,
    retries: int = 3,
    timeout: float = 30,
    progress: bool = True,
    backoff: float = 1.0,
) -> Path:
    """Download `url` to the file `dest`, verify its md5 and return `dest`.

    The body streams into a temporary file in `dest`'s folder that is renamed into place
    only once complete and verified, so `dest` never holds a partial file. If `dest`
    already exists with the right md5 nothing is downloaded. `file://` URLs work too.

    A failed or truncated transfer is tried again up to `retries` more times, waiting
    `backoff`, 2 * `backoff`, 4 * `backoff`... seconds in between. An unreachable host,
    an HTTP 4xx answer or a malformed URL fail at once.

    Raises:
        DownloadError: every attempt failed, or the download cannot start.
        ChecksumError: the downloaded file's md5 is not `md5` (no file is left at `dest`).
    """
    dest = Path(dest)
    expected_md5 = md5.lower()
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.parent / f".{dest.name}.lock"):
        if dest.is_file():
            if md5sum(dest) == expected_md5:
                return dest  # already there, or fetched by another process meanwhile
            logger.warning("%s exists but its md5 is not %s; downloading it again", dest, md5)
            dest.unlink()
        return _download_locked(url, dest, expected_md5, retries, timeout, progress, backoff)


def _download_locked(url: str, dest: Path, expected_md5: str, retries: int, timeout: float,
                     progress: bool, backoff: float) -> Path:
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            tmp = _fetch_once(url, dest.parent, dest.name, timeout, progress)
            break
        except _RetryableError as e:
            if attempt == attempts:
                raise DownloadError(
                    f"Downloading {url} failed {attempts} times; last error: {e}. "
                    "Try again later. " + _by_hand_hint(url)
                ) from e
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "download of %s failed (%s); retrying in %.1f s (attempt %d of %d)",
                url,
                e,
                delay,
                attempt + 1,
                attempts,
            )
            time.sleep(delay)

    actual_md5 = md5sum(tmp)
    if actual_md5 != expected_md5:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: the downloaded file has md5 {actual_md5} but {expected_md5} was expected; "
            "it has been deleted. The URL serves a different or damaged file: check the url "
            "and md5 settings, or try again."
        )
    os.replace(tmp, dest)
    return dest
