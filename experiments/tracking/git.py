"""What the code was: the commit and any uncommitted changes of the checkout being run.

What counts as a change is what can change a run: a tracked file modified, or an
untracked file in the source packages (SOURCE_DIRS), which the run may import or compose.
Untracked files elsewhere do not count: a config folder of one's own (`--config-dir
my_conf`, as the README suggests) reaches the run only through the config, which every
run logs resolved (config/config.yaml).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from experiments.tracking import tags

CODE_ROOT = Path(__file__).resolve().parents[2]  # the checkout holding cnn/ and experiments/
SOURCE_DIRS = ("cnn", "experiments", "conf")  # the packages a run imports or composes


def _git(*args: str, ok: tuple[int, ...] = (0,)) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=CODE_ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode in ok else None


def _in_sources(path: str) -> bool:
    return path.split("/", 1)[0] in SOURCE_DIRS


def _changes() -> list[tuple[str, str]]:
    """(status, path) of every change that counts, paths relative to CODE_ROOT."""
    # -z: paths verbatim (no quoting); --untracked-files=all: files, not their folders.
    out = _git("status", "--porcelain", "-z", "--untracked-files=all", "--", ".")
    prefix = (_git("rev-parse", "--show-prefix") or "").strip()  # CODE_ROOT inside the repo
    entries, changes = (out or "").split("\0"), []
    while entries:
        entry = entries.pop(0)
        if not entry:
            continue
        code, path = entry[:2], entry[3:].removeprefix(prefix)
        if code[0] in "RC":  # a rename or copy: its source path follows
            entries.pop(0)
        if code != "??" or _in_sources(path):
            changes.append(("untracked" if code == "??" else "modified", path))
    return changes


def git_state() -> tuple[str, bool, str]:
    """(commit, dirty, patch) of the code being run; ("unknown", False, "") outside git.

    The patch names the files that differ in its header, then holds `git diff HEAD` and
    each untracked source file as a new file, so `git apply` on the commit gives the
    code that ran.
    """
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown", False, ""
    changes = _changes()
    if not changes:
        return commit.strip(), False, ""
    header = [f"# uncommitted changes against {commit.strip()}; reproduce with "
              f"`git checkout {commit.strip()[:12]} && git apply git_diff.patch`:\n",
              *(f"#   {status}: {path}\n" for status, path in changes)]
    patch = _git("diff", "--binary", "HEAD", "--", ".") or ""
    for status, path in changes:
        if status == "untracked":  # exit code 1: the file differs from nothing, as it must
            patch += _git("diff", "--binary", "--no-index", "--", "/dev/null", path,
                          ok=(0, 1)) or ""
    return commit.strip(), True, "".join(header) + patch


def patch_files(patch: str) -> dict[str, str]:
    """Each file a logged patch changes, with its part of the patch.

    Also reads patches logged before untracked files were included: their untracked
    files were only listed ("# untracked files (not in the diff):"), and count only in
    the source packages, as now.
    """
    files, listed = {}, False
    for part in re.split(r"^(?=diff --git )", patch, flags=re.MULTILINE):
        body = [line for line in part.splitlines(keepends=True) if not line.startswith("#")]
        if part.startswith("diff --git "):
            path = part.splitlines()[0].rpartition(" b/")[2].strip('"')
            files[path] = "".join(body)
        for line in part.splitlines():  # the old listing, at the end of such patches
            listed = listed or line.startswith("# untracked files (not in the diff)")
            path = line[1:].strip()
            if listed and line.startswith("#   ") and _in_sources(path):
                files[path] = "untracked (content not logged)"
    return files


def uncommitted_differences(logged_patch: str, patch: str) -> list[str]:
    """The files whose uncommitted changes differ between a logged patch and now."""
    then, now = patch_files(logged_patch), patch_files(patch)
    differ = []
    for path in sorted(then.keys() | now.keys()):
        if path not in now:
            differ.append(f"{path} (changed in the run, not now)")
        elif path not in then:
            differ.append(f"{path} (changed now, not in the run)")
        elif then[path] != now[path]:
            differ.append(f"{path} (changed differently)")
    return differ


def git_tags(commit: str, dirty: bool) -> dict[str, str]:
    """The code's tags, as every run, sweep and benchmark writes them."""
    return {tags.GIT_COMMIT: commit, tags.GIT_DIRTY: tags.flag(dirty)}
