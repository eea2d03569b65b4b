""".gitignore: the files a run writes never make the checkout dirty (the git_dirty tag)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# SQLite writes the journal, or in WAL mode -wal and -shm, beside the store while a
# run (or another engineer's run) writes to it.
STORE_FILES = ["mlflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm"]


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def checkout() -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if _git("rev-parse", "--show-toplevel", cwd=REPO_ROOT).returncode != 0:
        pytest.skip(f"{REPO_ROOT} is not a git checkout")
    return REPO_ROOT


@pytest.mark.parametrize("folder", ["", "experiments/"])
@pytest.mark.parametrize("name", STORE_FILES)
def test_store_files_are_ignored(checkout, folder, name):
    # --no-index: ask the rules alone, whether or not such a file was ever committed.
    done = _git("check-ignore", "--no-index", "-v", f"{folder}{name}", cwd=checkout)
    assert done.returncode == 0, f"{folder}{name} is not ignored by {checkout / '.gitignore'}"


def test_store_being_written_leaves_status_clean(checkout, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(checkout / ".gitignore", repo / ".gitignore")
    assert _git("init", "-q", cwd=repo).returncode == 0
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _git("add", ".gitignore", cwd=repo)
    assert _git(*identity, "commit", "-q", "-m", "ignore rules", cwd=repo).returncode == 0
    for name in STORE_FILES:
        (repo / name).write_bytes(b"SQLite format 3\x00")
    status = _git("status", "--porcelain", cwd=repo)
    assert status.returncode == 0, status.stderr
    assert status.stdout == "", f"a run here would record git_dirty=true:\n{status.stdout}"
