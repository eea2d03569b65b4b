"""End to end: a sweep over batch size and seed names every run by its batch size, and
its report groups the seeds of each batch size with their means and 95% intervals."""

import csv
import math
import statistics

import pytest
from scipy import stats

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "data.n_train=200", "data.n_val=100", "trainer.epochs=1",
        "trainer.progress=false"]


@pytest.fixture(scope="module")
def sweep(module_harness_cli):
    cli = module_harness_cli
    folder = cli.folder / "multirun"
    done = cli.run("experiments.train", "-m", *TINY, "trainer.batch_size=32,64",
                   "trainer.seed=0,1", f"hydra.sweep.dir={folder}")
    assert done.returncode == 0, done.stdout + done.stderr
    client = cli.client()
    runs = client.search_runs([client.get_experiment_by_name("cifar10-cnn").experiment_id])
    parent = next(r for r in runs if "sweep_dir" in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children, folder / "report"


def test_every_run_has_its_own_name_with_its_batch_size(sweep):
    _, children, _ = sweep
    names = sorted(c.info.run_name for c in children)
    assert len(names) == 4 and len(set(names)) == 4
    for c in children:
        assert f"batch_size={c.data.params['trainer.batch_size']}" in c.info.run_name
        assert c.info.run_name.startswith(f"seed-he-lr0.03-n200-s{c.data.params['trainer.seed']}")


def test_the_table_shows_the_batch_size(sweep):
    _, _, report = sweep
    with open(report / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["trainer.batch_size"], r["seed"]) for r in rows) == [
        ("32", "0"), ("32", "1"), ("64", "0"), ("64", "1")]


def ci95(values):
    n = len(values)
    return stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


def test_groups_csv_has_each_batch_sizes_mean_and_interval_over_its_seeds(sweep):
    parent, children, report = sweep
    with open(report / "groups.csv") as f:
        rows = {r["trainer.batch_size"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["32", "64"]
    for batch, row in rows.items():
        mine = [c.data.metrics for c in children if c.data.params["trainer.batch_size"] == batch]
        assert row["n"] == "2" and "trainer.seed" not in row
        for metric in ("test_acc", "test_loss"):
            values = [m[metric] for m in mine]
            assert float(row[f"{metric}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(row[f"{metric}_ci95"]) == pytest.approx(ci95(values))
    best = max(rows, key=lambda b: float(rows[b]["test_acc_mean"]))
    metrics = parent.data.metrics
    assert parent.data.tags["best_group"] == f"batch_size={best}"
    assert metrics["best_group_test_acc_mean"] == pytest.approx(
        float(rows[best]["test_acc_mean"]))
    assert metrics["best_group_test_acc_ci95"] == pytest.approx(float(rows[best]["test_acc_ci95"]))
    summary = (report / "summary.md").read_text()
    assert "## Seeds as replicates" in summary
    # The two batch sizes compared, paired by seed.
    assert "## Paired comparisons" in summary and "vs batch_size=" in summary


def test_the_results_table_is_rebuilt_from_the_runs_with_intervals_and_provenance(
        sweep, module_harness_cli):
    parent, children, _ = sweep
    done = module_harness_cli.run("experiments.results", "--parent", parent.info.run_id,
                                "--target", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if "batch_size=" in line]
    assert len(rows) == 2
    for row in rows:
        batch = "32" if "batch_size=32" in row else "64"
        mine = sorted((c for c in children if c.data.params["trainer.batch_size"] == batch),
                      key=lambda c: c.data.params["trainer.seed"])
        accs = [c.data.metrics["test_acc"] for c in mine]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == " / ".join(f"{a * 100:.2f}" for a in accs)
        mean, ci = statistics.fmean(accs), ci95(accs)
        assert cells[3] == f"{mean * 100:.2f} ± {ci * 100:.2f}"
        p = stats.ttest_1samp(accs, 0.1).pvalue
        assert f"p={p:.2g}" in cells[4]
        assert cells[5] == parent.info.run_id[:8]
        assert cells[6] == mine[0].data.tags["git_commit"][:7] + (
            "+dirty" if mine[0].data.tags["git_dirty"] == "true" else "")
        assert cells[8] == mine[0].data.tags["cpu"] and cells[9] == mine[0].data.tags["blas_kernel"]
    # The two batch sizes are one sweep: nothing to compare across sweeps.
    assert "paired" not in done.stdout and "better" not in done.stdout


def test_a_missing_sweep_is_one_line(sweep, module_harness_cli):
    done = module_harness_cli.run("experiments.results", "--parent", "0" * 32)
    assert done.returncode != 0
    assert "no such sweep" in done.stderr and "Traceback" not in done.stderr
