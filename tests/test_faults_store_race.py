"""Two commands started at once in an empty folder create one SQLite store between them:
before the lock in tracking.store, both ran MLflow's migrations on the new file and one
died with alembic's "Online migration expected to match one row" (issue 27, point 8; 3 of
3 tries with two `experiments.reap`, as with two trainings).

`experiments.reap` stands for the commands that write: it opens its store through
tracking.store.open_store, as training does (use_store), and trains nothing, so the race
is all there is to it."""

import subprocess

import pytest
from fixtures.harness import HarnessCli

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]  # two processes importing MLflow


def test_two_commands_create_a_new_store_at_once(tmp_path):
    cli = HarnessCli(tmp_path, cifar_root=tmp_path / "no-cifar10")  # reap reads no images
    both = [subprocess.Popen(cli.command("experiments.reap"), cwd=cli.folder, env=cli.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], "\n".join(outputs)
    assert all("no stale RUNNING runs" in out for out in outputs), outputs
    assert cli.client().search_experiments()  # the store is whole: its default experiment
