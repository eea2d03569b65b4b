"""What the code was: the commit and any uncommitted changes of the checkout being run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from experiments.tracking import tags

CODE_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding cnn/ and experiments/


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=CODE_ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> tuple[str, bool, str]:
    """(commit, dirty, diff) of the code being run; ("unknown", False, "") outside git.

    `diff` is `git diff HEAD` (tracked files; new untracked files are only listed), so a
    dirty run can be reproduced by applying it to the commit.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown", False, ""
    status = _git("status", "--porcelain") or ""
    diff = _git("diff", "HEAD") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    if untracked:
        diff += "\n# untracked files (not in the diff):\n" + "".join(
            f"#   {path}\n" for path in untracked
        )
    return commit.strip(), bool(status.strip()), diff


def git_tags(commit: str, dirty: bool) -> dict[str, str]:
    """The code's tags, as every run, sweep and benchmark writes them."""
    return {tags.GIT_COMMIT: commit, tags.GIT_DIRTY: tags.flag(dirty)}
