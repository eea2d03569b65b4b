"""git_dirty and git_diff.patch count what can change a run, and name it (issue 22, point 4):
tracked files modified, and untracked files in the source packages (cnn/, experiments/,
conf/); not an untracked folder elsewhere, such as the my_conf/ docs/training.md suggests."""

import shutil
import subprocess
from pathlib import Path

import pytest

from experiments.runs import logged
from experiments.tracking import git, tags

IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A committed checkout shaped like the project's, that git_state reads."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "checkout"
    for path, text in {"cnn/net.py": "WIDTH = 8\n", "experiments/train.py": "RUN = 1\n",
                       "conf/model/seed.yaml": "name: seed\n", "README.md": "# lab\n"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "start")
    monkeypatch.setattr(git, "CODE_ROOT", root)
    return root


def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def test_a_clean_checkout_is_clean(repo):
    commit, dirty, diff = git.git_state()
    assert commit == _git(repo, "rev-parse", "HEAD").strip()
    assert (dirty, diff) == (False, "")


def test_an_untracked_config_folder_outside_the_packages_does_not_make_it_dirty(repo):
    """docs/training.md's my_conf/model/small_resnet.yaml: the run logs the config it composes
    (config/config.yaml), so the file's content is on record without the patch."""
    _write(repo, "my_conf/model/small_resnet.yaml", "layers: []\n")
    _, dirty, diff = git.git_state()
    assert dirty is False, diff
    assert "my_conf" not in diff


def test_an_untracked_file_in_a_package_is_dirty_and_its_content_is_in_the_patch(repo, tmp_path):
    _write(repo, "cnn/layers/new_layer.py", "GAIN = 2\n")
    _write(repo, "my_conf/model/small_resnet.yaml", "layers: []\n")
    commit, dirty, diff = git.git_state()
    assert dirty is True
    assert "cnn/layers/new_layer.py" in diff.split("diff --git", 1)[0]  # named in the header
    assert "+GAIN = 2" in diff and "my_conf" not in diff
    # The patch reproduces the run's code on a clean copy of its commit.
    copy = tmp_path / "copy"
    _git(tmp_path, "clone", "-q", str(repo), str(copy))
    (tmp_path / "run.patch").write_text(diff)
    _git(copy, "apply", str(tmp_path / "run.patch"))
    assert (copy / "cnn/layers/new_layer.py").read_text() == "GAIN = 2\n"


def test_a_modified_tracked_file_is_dirty_anywhere(repo):
    _write(repo, "README.md", "# lab, edited\n")
    _, dirty, diff = git.git_state()
    assert dirty is True and "README.md" in diff.split("diff --git", 1)[0]


def _warnings(monkeypatch, logged_dirty: bool, logged_patch: str) -> list[str]:
    commit, _, _ = git.git_state()
    monkeypatch.setattr(logged, "logged_diff", lambda run_id: logged_patch)
    run_tags = {tags.GIT_COMMIT: commit, tags.GIT_DIRTY: tags.flag(logged_dirty),
                tags.DATA_DIGEST: "d"}
    return logged.provenance_warnings("run", run_tags, "d")


def test_the_rerun_warning_names_the_files_that_differ(repo, monkeypatch):
    _write(repo, "cnn/net.py", "WIDTH = 16\n")
    _write(repo, "experiments/train.py", "RUN = 2\n")
    _, _, then = git.git_state()  # what the run logged
    _write(repo, "cnn/net.py", "WIDTH = 32\n")  # changed again since
    _write(repo, "conf/model/wide.yaml", "name: wide\n")  # new since
    _write(repo, "my_conf/model/small_resnet.yaml", "layers: []\n")  # does not count
    (warning,) = _warnings(monkeypatch, True, then)
    assert "cnn/net.py" in warning and "conf/model/wide.yaml" in warning
    assert "experiments/train.py" not in warning and "my_conf" not in warning


def test_a_run_logged_dirty_only_by_an_untracked_folder_reruns_without_a_warning(
        repo, monkeypatch):
    """Runs logged before this rule: their patch lists my_conf/ as untracked."""
    _write(repo, "my_conf/model/small_resnet.yaml", "layers: []\n")
    before = "\n# untracked files (not in the diff):\n#   my_conf/\n"
    assert _warnings(monkeypatch, True, before) == []
