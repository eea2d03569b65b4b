"""Shared pytest fixtures. Each block belongs to one part of the project; add new blocks."""

import os
import tarfile
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------
# Data fixtures (cnn.data; used by tests/test_data_*.py).
#
# Real CIFAR-10 comes from $CIFAR10_ROOT. If it is set but unusable the tests FAIL, so a
# misconfigured CI cannot pass by skipping. Unset, ../shared/data beside the repository
# is used if present, else the tests that need real images skip.
# ---------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    """The folder holding real CIFAR-10 (validated by loading it once)."""
    from cnn.data import load_cifar10  # imported here so collection never needs the data

    env = os.environ.get("CIFAR10_ROOT")
    if env:
        root, origin = Path(env), f"CIFAR10_ROOT={env}"
    elif (SHARED_DATA / "cifar-10-batches-py").is_dir():
        root, origin = SHARED_DATA, f"the fallback {SHARED_DATA}"
    else:
        pytest.skip(f"no CIFAR-10: CIFAR10_ROOT is unset and {SHARED_DATA} does not exist")
    try:
        load_cifar10(root)
    except Exception as e:
        pytest.fail(f"{origin} is set but CIFAR-10 cannot be loaded from it: {e}", pytrace=False)
    return root


@pytest.fixture(scope="session")
def cifar10(cifar_root: Path):
    """The real dataset, loaded once per session (cnn.data.Cifar10)."""
    from cnn.data import load_cifar10

    return load_cifar10(cifar_root)


@pytest.fixture(scope="session")
def cifar_folder(cifar10) -> Path:
    """The cifar-10-batches-py folder the real data is read from."""
    return cifar10.source


@pytest.fixture(scope="session")
def cifar_archive(cifar_root: Path, cifar_folder: Path, tmp_path_factory) -> Path:
    """A cifar-10-python.tar.gz of the real data: the root's own, else packed from the folder."""
    archive = cifar_root / "cifar-10-python.tar.gz"
    if archive.is_file():
        return archive
    archive = tmp_path_factory.mktemp("cifar_archive") / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(cifar_folder, arcname="cifar-10-batches-py")
    return archive


# ---------------------------------------------------------------------------------------
# End of data fixtures.
# ---------------------------------------------------------------------------------------
