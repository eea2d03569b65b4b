"""The first run on a machine without CIFAR-10: the archive is downloaded once (for a
whole sweep), checked and used; with data.download=false, or data that cannot be had,
the command fails before any MLflow run exists."""

import os
from pathlib import Path

import pytest
from fixtures.harness import HarnessCli

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

QUICK = ["model=seed", "trainer.progress=false", "trainer.health_checks=false",
         "tracking.log_dataset=false", "tracking.log_model=false", "data.n_train=100",
         "trainer.epochs=1", "trainer.batch_size=50"]
DOWNLOADING = "downloading CIFAR-10 from"  # cnn.data.cifar10's log line


@pytest.fixture
def fresh_cli(tmp_path, cifar_root) -> HarnessCli:
    """A HarnessCli whose commands see no CIFAR10_ROOT, as on a fresh machine."""
    cli = HarnessCli(tmp_path / "work", cifar_root)
    cli.folder.mkdir()
    del cli.env["CIFAR10_ROOT"]
    return cli


@pytest.fixture
def archive(cifar_archive: Path) -> tuple[str, str]:
    from cnn.data import md5sum

    return cifar_archive.resolve().as_uri(), md5sum(cifar_archive)


def all_runs(cli):
    client = cli.client()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def test_a_sweep_downloads_the_data_once_then_trains(fresh_cli, archive, tmp_path):
    url, md5 = archive
    root = tmp_path / "empty"
    done = fresh_cli.run("experiments.train", "-m", *QUICK, "trainer.seed=0,1",
                         f"data.root={root}", f"data.url={url}", f"data.md5={md5}",
                         f"hydra.sweep.dir={fresh_cli.folder / 'mr'}", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count(DOWNLOADING) == 1, output
    assert sorted(p.name for p in root.iterdir()) == [
        "cifar-10-batches-py", "cifar-10-python.tar.gz"]  # no partial file left
    runs = all_runs(fresh_cli)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert sum("test_acc" in r.data.metrics for r in runs) == 2


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_no_download_allowed_fails_before_any_run(fresh_cli, tmp_path, sweep):
    root = tmp_path / "empty"
    args = ["-m", "trainer.seed=0,1", f"hydra.sweep.dir={fresh_cli.folder / 'mr'}"] if sweep \
        else []
    done = fresh_cli.run("experiments.train", *args, *QUICK, f"data.root={root}",
                         "data.download=false")
    assert done.returncode != 0
    assert "CIFAR-10 not found" in done.stderr and str(root) in done.stderr, done.stderr
    assert all_runs(fresh_cli) == []
    assert not root.exists() or not os.listdir(root)


def test_a_bad_checksum_fails_before_any_run(fresh_cli, archive, tmp_path):
    url, _ = archive
    done = fresh_cli.run("experiments.train", *QUICK, f"data.root={tmp_path / 'empty'}",
                         f"data.url={url}", "data.md5=0123456789abcdef0123456789abcdef")
    assert done.returncode != 0
    assert "md5" in done.stderr, done.stderr
    assert all_runs(fresh_cli) == []
