"""The learning curve e(n) = a + b·n^-c: its least-squares fit, its bootstrap intervals over
seeds, its held-out score and extrapolation, and how the report shows them."""

import csv
import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from experiments.reporting.collect import RunSummary
from experiments.reporting.learning_curve import (
    TARGET_N,
    fit_curve,
    fit_power_law,
    learning_curves,
    size_groups,
)
from experiments.reporting.learning_curve_report import (
    curve_metrics,
    curves_section,
    learning_curve_figure,
    write_curves_csv,
)

SIZES = (500, 1000, 2000, 4000)
A, B, C = 0.25, 6.0, 0.45  # e(n) = A + B n^-C: 0.61 at 500, 0.39 at 4000, 0.30 at 50,000


def truth(n):
    return A + B * np.asarray(n, dtype=float) ** -C


def run(n, seed, acc, status="FINISHED", **more):
    swept = {"data.n_train": str(n), "trainer.seed": str(seed), **more}
    return RunSummary(run_id=f"{n}-{seed}-{more}", name=f"n{n}-s{seed}", status=status,
                      init="pytorch", lr=0.05, n_train=str(n), seed=str(seed),
                      test_acc=acc, swept=swept)


def noisy_runs(sd=0.01, seeds=3, data_seed=7, **more):
    rng = np.random.default_rng(data_seed)
    return [run(n, s, 1.0 - float(truth(n) + rng.normal(0, sd)), **more)
            for n in SIZES for s in range(seeds)]


def test_the_fit_agrees_with_curve_fit_on_the_unscaled_form():
    runs = noisy_runs()
    sizes = [float(r.n_train) for r in runs]
    errors = [1.0 - r.test_acc for r in runs]
    ours = fit_power_law(sizes, errors)
    (a, b, c), _ = curve_fit(lambda n, a, b, c: a + b * n ** -c, np.array(sizes),
                             np.array(errors), p0=(A, B, C), maxfev=20_000)
    grid = np.array([500, 4000, TARGET_N], dtype=float)
    assert ours.error(grid) == pytest.approx(a + b * grid ** -c, abs=1e-5)
    assert (ours.a, ours.b_unscaled, ours.c) == pytest.approx((a, b, c), rel=1e-3)


def test_noise_free_errors_give_back_the_law_and_a_perfect_held_out_score():
    errors = {float(n): [float(truth(n))] * 2 for n in SIZES}
    curve = fit_curve("all runs", errors, resamples=50)
    assert (curve.fit.a, curve.fit.b_unscaled, curve.fit.c) == pytest.approx((A, B, C), rel=1e-5)
    assert curve.extrapolated.value == pytest.approx(float(truth(TARGET_N)), rel=1e-5)
    assert curve.held_out_miss == pytest.approx(0.0, abs=1e-6)


def test_bootstrap_intervals_hold_the_truth_and_repeat_exactly():
    errors = size_groups(noisy_runs())["all runs"]
    curve = fit_curve("all runs", errors, resamples=100, seed=0)
    again = fit_curve("all runs", errors, resamples=100, seed=0)
    assert curve.resamples == again.resamples > 90
    assert (curve.extrapolated, curve.a, curve.c) == (again.extrapolated, again.a, again.c)
    for interval in (curve.a, curve.c, curve.at_largest, curve.extrapolated):
        assert interval.low <= interval.value <= interval.high
    # Four times the seeds, about half the width. (From 2 seeds a size the bootstrap
    # knows only 3 draws per size and is over-confident; the report shows n per size.)
    wide = fit_curve("x", size_groups(noisy_runs(seeds=3))["all runs"], resamples=100)
    narrow = fit_curve("x", size_groups(noisy_runs(seeds=12))["all runs"], resamples=100)
    assert (narrow.extrapolated.high - narrow.extrapolated.low
            < wide.extrapolated.high - wide.extrapolated.low)


def test_the_intervals_hold_the_truth_for_most_data_sets():
    # A 95% interval from 3 seeds a size: a small-sample bootstrap covers a little less
    # than 95%, so of 12 data sets 9 or more must have the truth inside.
    held = {"extrapolated": 0, "at_largest": 0}
    for data_seed in range(12):
        errors = size_groups(noisy_runs(data_seed=data_seed))["all runs"]
        curve = fit_curve("all runs", errors, resamples=40, seed=data_seed)
        held["extrapolated"] += curve.extrapolated.low <= truth(TARGET_N) <= curve.extrapolated.high
        held["at_largest"] += curve.at_largest.low <= truth(4000) <= curve.at_largest.high
    assert min(held.values()) >= 9, held


def test_the_held_out_score_is_the_prediction_from_the_smaller_sizes_minus_the_measure():
    runs = noisy_runs()
    errors = size_groups(runs)["all runs"]
    curve = fit_curve("all runs", errors, resamples=20)
    smaller = [(float(r.n_train), 1.0 - r.test_acc) for r in runs if r.n_train != "4000"]
    held = fit_power_law(*zip(*smaller, strict=True), n_ref=4000.0)
    measured = np.mean([1.0 - r.test_acc for r in runs if r.n_train == "4000"])
    assert curve.held_out.value == pytest.approx(float(held.error(4000.0)), rel=1e-9)
    assert curve.held_out_miss == pytest.approx(curve.held_out.value - measured, rel=1e-9)


def test_one_run_per_size_has_a_curve_without_an_interval():
    curve = fit_curve("x", size_groups(noisy_runs(seeds=1))["all runs"])
    assert curve.resamples == 0
    assert math.isnan(curve.extrapolated.low)
    assert "one run per size, so no interval" in curves_section([curve])


def test_groups_leave_out_failed_runs_and_split_by_the_other_swept_keys():
    runs = (noisy_runs(**{"trainer.batch_size": "32"})
            + noisy_runs(**{"trainer.batch_size": "128"})
            + [run(8000, 0, 0.1, status="FAILED", **{"trainer.batch_size": "32"})])
    groups = size_groups(runs)
    assert sorted(groups) == ["batch_size=128", "batch_size=32"]
    assert sorted(groups["batch_size=32"]) == [float(n) for n in SIZES]
    assert [len(v) for v in groups["batch_size=32"].values()] == [3, 3, 3, 3]
    assert len(learning_curves(runs, resamples=10)) == 2


def test_too_few_sizes_give_no_curve_and_the_section_says_so():
    runs = [r for r in noisy_runs() if r.n_train in ("500", "1000")]
    assert learning_curves(runs) == []
    assert "no curve" in curves_section([])


def test_the_report_writes_its_figure_table_section_and_metrics(tmp_path):
    curve = fit_curve("all runs", size_groups(noisy_runs())["all runs"], resamples=100)
    write_curves_csv([curve], tmp_path / "learning_curve.csv")
    with open(tmp_path / "learning_curve.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert float(row[f"error_at_{TARGET_N}"]) == curve.extrapolated.value
    assert float(row[f"error_at_{TARGET_N}_low"]) == curve.extrapolated.low
    assert row["sizes"] == "500 1000 2000 4000" and row["runs"] == "12"
    section = curves_section([curve])
    assert f"extrapolated to {TARGET_N:,}: {curve.extrapolated.text()}%" in section
    assert "fitted on the sizes below 4000" in section
    metrics = curve_metrics([curve])
    assert metrics[f"curve_error_{TARGET_N}_high"] == curve.extrapolated.high
    assert metrics["curve_held_out_miss"] == curve.held_out_miss
    fig = learning_curve_figure([curve])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert ax.get_xscale() == "log"
    assert ax.collections, "the bootstrap band is drawn"
    assert max(ax.get_xlim()) >= TARGET_N
