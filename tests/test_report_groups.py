"""Seeds as replicates: runs that differ only in trainer.seed form a group, summarised by
n, mean, standard deviation and a 95% Student-t interval."""

import csv
import math
import statistics

import pytest
from scipy import stats

from experiments.reporting.collect import RunSummary
from experiments.reporting.groups import best_group_metrics, seed_groups, write_groups_csv

ACC = {("32", "0"): 0.40, ("32", "1"): 0.43, ("32", "2"): 0.41,
       ("128", "0"): 0.35, ("128", "1"): 0.36, ("128", "2"): 0.30}


def run(batch, seed, acc, loss=None, status="FINISHED"):
    return RunSummary(run_id=f"{batch}-{seed}", name=f"r{batch}-{seed}", status=status,
                      init="he", lr=0.03, n_train="1000", seed=seed, test_acc=acc,
                      test_loss=2.0 - acc if loss is None and acc is not None else loss,
                      params={"trainer.batch_size": batch, "trainer.seed": seed,
                              "optim.lr": "0.03"},
                      swept={"trainer.batch_size": batch, "trainer.seed": seed})


RUNS = [run(b, s, acc) for (b, s), acc in ACC.items()]


def expected(values):
    n = len(values)
    sd = statistics.stdev(values)
    return statistics.fmean(values), sd, stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def test_runs_differing_only_in_the_seed_form_a_group_with_its_interval():
    groups = seed_groups(RUNS)
    assert [g.label for g in groups] == ["batch_size=32", "batch_size=128"]
    assert [g.values for g in groups] == [{"trainer.batch_size": "32"},
                                          {"trainer.batch_size": "128"}]
    for g, batch in zip(groups, ["32", "128"], strict=True):
        values = [ACC[batch, s] for s in "012"]
        s = g.stats("test_acc")
        assert s.n == 3
        assert (s.mean, s.sd, s.ci95) == pytest.approx(expected(values), rel=1e-12)


def test_groups_csv_has_a_row_per_group(tmp_path):
    write_groups_csv(seed_groups(RUNS), tmp_path / "groups.csv")
    with open(tmp_path / "groups.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["trainer.batch_size"] for r in rows] == ["32", "128"]
    assert "trainer.seed" not in rows[0]
    assert {"n", "test_acc_mean", "test_acc_ci95", "test_loss_mean", "test_loss_ci95"} \
        <= set(rows[0])
    losses = [2.0 - ACC["128", s] for s in "012"]
    mean, _, ci = expected(losses)
    assert (float(rows[1]["test_loss_mean"]), float(rows[1]["test_loss_ci95"])) == \
        pytest.approx((mean, ci), rel=1e-12)
    assert rows[1]["n"] == "3" and rows[1]["seeds"] == "0 1 2"


def test_a_failed_seed_is_left_out_of_its_group_and_one_seed_has_no_interval():
    groups = seed_groups([run("32", "0", 0.4), run("32", "1", None, status="FAILED"),
                          run("64", "0", 0.3)])
    assert [g.stats("test_acc").n for g in groups] == [1, 1]
    assert math.isnan(groups[0].stats("test_acc").ci95)


def test_the_parent_logs_the_best_groups_mean_and_interval():
    metrics, label = best_group_metrics(seed_groups(RUNS))
    assert label == "batch_size=32"
    mean, _, ci = expected([ACC["32", s] for s in "012"])
    assert metrics["best_group_test_acc_mean"] == pytest.approx(mean)
    assert metrics["best_group_test_acc_ci95"] == pytest.approx(ci)
    assert metrics["best_group_n"] == 3
