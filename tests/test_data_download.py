"""Downloading over a loopback HTTP server, and safe extraction of tar archives."""

import hashlib
import io
import re
import shutil
import socket
import tarfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnn.data import (
    ChecksumError,
    CorruptDatasetError,
    DownloadError,
    UnsafeArchiveError,
    download,
    extract_tar,
    load_cifar10,
    md5sum,
)

ARCHIVE = "cifar-10-python.tar.gz"

# --- a loopback server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def payload(cifar_archive) -> SimpleNamespace:
    content = cifar_archive.read_bytes()
    return SimpleNamespace(content=content, md5=hashlib.md5(content).hexdigest())


@pytest.fixture
def server(payload):
    """Serves the archive at /ok; /flaky cuts the first `fail_first` transfers short,
    /truncated always does, /busy answers 503, anything else 404."""
    state = SimpleNamespace(requests=Counter(), fail_first=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state.requests[self.path] += 1
            if self.path == "/busy":
                self.send_error(503)
                return
            if self.path not in ("/ok", "/flaky", "/truncated"):
                self.send_error(404)
                return
            cut = self.path == "/truncated" or (
                self.path == "/flaky" and state.requests[self.path] <= state.fail_first
            )
            body = payload.content
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # A cut transfer promises the whole length, sends half, and closes.
            self.wfile.write(body[: len(body) // 2] if cut else body)

        def log_message(self, *args):  # keep test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", state=state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- download -----------------------------------------------------------------------------


@pytest.mark.data
def test_shared_archive_matches_its_published_sha256(cifar_archive):
    sums = cifar_archive.parent / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"no SHA256SUMS beside {cifar_archive}")
    expected = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line.strip())
    assert hashlib.sha256(cifar_archive.read_bytes()).hexdigest() == expected[ARCHIVE]


@pytest.mark.data
def test_download_puts_a_verified_file_in_place(server, payload, tmp_path):
    dest = tmp_path / "sub" / ARCHIVE
    result = download(f"{server.url}/ok", dest, payload.md5, timeout=5, progress=True)
    assert result == dest
    assert md5sum(dest) == payload.md5
    assert _files(dest.parent) == [ARCHIVE]  # no temporary file left behind
    # A file already in place with the right md5 is not fetched again.
    download(f"{server.url}/ok", dest, payload.md5, timeout=5, progress=False)
    assert server.state.requests["/ok"] == 1


@pytest.mark.data
def test_concurrent_downloads_of_one_file_fetch_it_once(server, payload, tmp_path):
    # The jobs of a parallel sweep on a fresh machine all look for the archive at once.
    dest = tmp_path / ARCHIVE
    errors = []

    def fetch():
        try:
            download(f"{server.url}/ok", dest, payload.md5, timeout=10, progress=False)
        except Exception as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert server.state.requests["/ok"] == 1
    assert _files(tmp_path) == [ARCHIVE] and md5sum(dest) == payload.md5


@pytest.mark.data
def test_wrong_checksum_leaves_no_file(server, payload, tmp_path):
    dest = tmp_path / ARCHIVE
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as excinfo:
        download(f"{server.url}/ok", dest, wrong, timeout=5, progress=False)
    assert wrong in str(excinfo.value) and payload.md5 in str(excinfo.value)
    assert _files(tmp_path) == []


@pytest.mark.data
def test_stale_file_with_wrong_md5_is_replaced(server, payload, tmp_path):
    dest = tmp_path / ARCHIVE
    dest.write_bytes(b"an old partial download")
    download(f"{server.url}/ok", dest, payload.md5, timeout=5, progress=False)
    assert md5sum(dest) == payload.md5


@pytest.mark.data
def test_cut_transfers_are_retried_until_one_succeeds(server, payload, tmp_path):
    server.state.fail_first = 2
    dest = tmp_path / ARCHIVE
    download(f"{server.url}/flaky", dest, payload.md5, retries=3, backoff=0, progress=False)
    assert server.state.requests["/flaky"] == 3
    assert md5sum(dest) == payload.md5
    assert _files(tmp_path) == [ARCHIVE]


@pytest.mark.data
def test_always_cut_transfer_raises_after_the_retries(server, tmp_path):
    url = f"{server.url}/truncated"
    with pytest.raises(DownloadError, match="received .* of .* bytes") as excinfo:
        download(url, tmp_path / ARCHIVE, "0" * 32, retries=2, backoff=0, progress=False)
    assert url in str(excinfo.value) and "3 times" in str(excinfo.value)
    assert server.state.requests["/truncated"] == 3
    assert _files(tmp_path) == []


@pytest.mark.data
def test_server_errors_are_retried_but_not_found_is_not(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 503"):
        download(f"{server.url}/busy", tmp_path / "x", "0" * 32, retries=1, backoff=0)
    assert server.state.requests["/busy"] == 2
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing", tmp_path / "x", "0" * 32, retries=3, backoff=0)
    assert server.state.requests["/missing"] == 1
    assert _files(tmp_path) == []


def test_unreachable_host_fails_fast_with_what_to_do(tmp_path):
    with socket.socket() as s:  # a port that was just free, so nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(DownloadError) as excinfo:
        # A long backoff would make a retry obvious in the elapsed time.
        download(f"http://127.0.0.1:{port}/x.tar.gz", tmp_path / "x", "0" * 32, backoff=30)
    assert time.monotonic() - start < 10
    message = str(excinfo.value)
    assert "No network" in message and "CIFAR10_ROOT" in message and "data.root" in message
    assert _files(tmp_path) == []


@pytest.mark.data
def test_file_urls_work(cifar_archive, payload, tmp_path):
    dest = download(cifar_archive.as_uri(), tmp_path / ARCHIVE, payload.md5, progress=False)
    assert md5sum(dest) == payload.md5


def test_missing_file_url_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="no such file"):
        download((tmp_path / "absent.tar.gz").as_uri(), tmp_path / "x", "0" * 32, backoff=0)


@pytest.mark.data
def test_load_cifar10_downloads_and_extracts(server, payload, cifar10, tmp_path):
    root = tmp_path / "fresh"
    data = load_cifar10(root, download=True, url=f"{server.url}/ok", md5=payload.md5)
    assert _files(root) == ["cifar-10-batches-py", ARCHIVE]
    np.testing.assert_array_equal(data.x_train, cifar10.x_train)
    np.testing.assert_array_equal(data.y_test, cifar10.y_test)
    # The data is there now: a second call does not download.
    load_cifar10(root, download=True, url=f"{server.url}/ok", md5=payload.md5)
    assert server.state.requests["/ok"] == 1


# --- extract_tar --------------------------------------------------------------------------


@pytest.mark.data
def test_extract_tar_unpacks_the_real_archive(cifar_archive, cifar_folder, tmp_path):
    assert extract_tar(cifar_archive, tmp_path / "out") == tmp_path / "out"
    assert _files(tmp_path / "out") == ["cifar-10-batches-py"]
    extracted = tmp_path / "out" / "cifar-10-batches-py"
    assert _files(extracted) == _files(cifar_folder)
    for name in _files(cifar_folder):
        assert (extracted / name).read_bytes() == (cifar_folder / name).read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        extract_tar(cifar_archive, tmp_path / "out")


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _tar_with(path: Path, evil: tarfile.TarInfo) -> Path:
    """A tar whose first member is harmless and whose second is `evil`."""
    with tarfile.open(path, "w") as tar:
        content = b"harmless"
        safe = _member("cifar-10-batches-py/readme")
        safe.size = len(content)
        tar.addfile(safe, io.BytesIO(content))
        if evil.isreg():
            evil.size = len(content)
            tar.addfile(evil, io.BytesIO(content))
        else:
            tar.addfile(evil)
    return path


@pytest.mark.parametrize(
    ("make_member", "reason"),
    [
        (lambda tmp: _member("../evil"), "'..'"),
        (lambda tmp: _member("cifar-10-batches-py/../../evil"), "'..'"),
        (lambda tmp: _member(str(tmp / "evil")), "absolute path"),
        (lambda tmp: _member("link", tarfile.SYMTYPE, "../evil"), "points outside"),
        (lambda tmp: _member("link", tarfile.SYMTYPE, str(tmp / "evil")), "absolute path"),
        (lambda tmp: _member("a/link", tarfile.SYMTYPE, "../../evil"), "points outside"),
        (lambda tmp: _member("hard", tarfile.LNKTYPE, "../evil"), "points outside"),
        (lambda tmp: _member("dev", tarfile.CHRTYPE), "device"),
        (lambda tmp: _member("fifo", tarfile.FIFOTYPE), "device"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-up",
        "symlink-absolute",
        "nested-symlink-up",
        "hardlink-up",
        "char-device",
        "fifo",
    ],
)
def test_extract_tar_refuses_unsafe_members(tmp_path, make_member, reason):
    archive = _tar_with(tmp_path / "evil.tar", make_member(tmp_path))
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match=reason) as excinfo:
        extract_tar(archive, dest)
    assert str(archive) in str(excinfo.value)
    # Nothing at all was written, not even the harmless first member.
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.tar"]


def test_extract_tar_keeps_links_that_stay_inside(tmp_path):
    archive = _tar_with(
        tmp_path / "ok.tar", _member("cifar-10-batches-py/alias", tarfile.SYMTYPE, "readme")
    )
    extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "cifar-10-batches-py" / "alias").read_bytes() == b"harmless"


@pytest.mark.data
def test_truncated_archive_is_a_corrupt_dataset(cifar_archive, tmp_path):
    content = cifar_archive.read_bytes()
    archive = tmp_path / ARCHIVE
    archive.write_bytes(content[: len(content) // 2])
    with pytest.raises(CorruptDatasetError, match=re.escape(str(archive))):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "cifar-10-batches-py").exists()
    # Through the loader the same archive gives the same error.
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    with pytest.raises(CorruptDatasetError, match="truncated or not a tar archive"):
        load_cifar10(tmp_path)
