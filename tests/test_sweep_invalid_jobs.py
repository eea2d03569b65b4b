"""A grid sweep with invalid jobs is refused before its parent run exists, naming each
invalid job and why; a sweep none of whose jobs made a run exits non-zero with its parent
FAILED, and the report says there is nothing to report rather than crashing (issue 27,
point 2: such sweeps exited 0, FINISHED, counted "1 runs: 1 FINISHED" for two jobs, and
the report failed on 0 rows)."""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]  # each case starts the sweep command

TINY = ["-m", "model=seed", "data.n_train=300", "data.n_val=100", "trainer.epochs=1",
        "trainer.progress=false", "trainer.health_checks=false"]


def runs(cli):
    client = cli.client()
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize(("swept", "refused"), [
    (["optim.lr=0.01,-5"], ["job 1 (optim.lr=-5)"]),
    (["++optim.lrr=0.1,0.2"], ["job 0 (++optim.lrr=0.1)", "job 1 (++optim.lrr=0.2)"]),
], ids=["one-bad-value", "all-unknown-key"])
def test_invalid_jobs_refuse_the_sweep_before_its_parent(harness_cli, swept, refused):
    done = harness_cli.run("experiments.train", *TINY, *swept)
    assert done.returncode != 0, done.stdout + done.stderr
    assert f"{len(refused)} of its 2 jobs are invalid" in done.stderr, done.stderr
    for job in refused:
        assert job in done.stderr
    assert runs(harness_cli) == []


def test_a_sweep_whose_jobs_all_fail_before_their_runs_fails(harness_cli):
    # Valid configs whose data cannot be had: each job fails before its run exists.
    done = harness_cli.run("experiments.train", *TINY, "data.download=false",
                           "data.root=/no/such/folder,/nor/this")
    assert done.returncode != 0, done.stdout + done.stderr
    assert "2 job(s) made no run" in done.stderr and "job(s) 0, 1" in done.stderr
    [parent] = runs(harness_cli)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["jobs_without_run"] == "0, 1"
    report = harness_cli.run("experiments.report", "--parent", parent.info.run_id)
    assert report.returncode != 0
    assert "has no runs to report on" in report.stderr, report.stderr
    assert "Traceback" not in report.stderr
