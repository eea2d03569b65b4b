"""Whether one seed group beats another, paired by seed: the difference, its 95% interval
and scipy.stats.ttest_rel's p-value, in words."""

import math
import statistics

import pytest
from scipy import stats

from experiments.reporting.collect import RunSummary
from experiments.reporting.compare import comparisons_section, paired_comparison, seeds_needed
from experiments.reporting.groups import Group, half_width, seed_groups


def group(label, accs, seeds=None):
    seeds = seeds or [str(i) for i in range(len(accs))]
    runs = [RunSummary(run_id=f"{label}{s}", name=f"{label}{s}", status="FINISHED",
                       init="he", lr=0.03, n_train="1000", seed=s, test_acc=acc,
                       test_loss=2.0 - acc, swept={"optim": label, "trainer.seed": s})
            for s, acc in zip(seeds, accs, strict=True)]
    return Group({"optim": label}, runs)


A = group("sgd", [0.400, 0.410, 0.395])
B = group("adam", [0.412, 0.425, 0.404])  # better by 1.2 points on each seed, give or take


def test_the_paired_comparison_is_scipys_paired_t_test():
    c = paired_comparison(A, B)
    xs, ys = [0.400, 0.410, 0.395], [0.412, 0.425, 0.404]
    diffs = [y - x for x, y in zip(xs, ys, strict=True)]
    assert c.p_value == pytest.approx(stats.ttest_rel(ys, xs).pvalue, rel=1e-12)
    assert c.difference == pytest.approx(statistics.fmean(diffs), rel=1e-12)
    ci = stats.t.ppf(0.975, 2) * statistics.stdev(diffs) / math.sqrt(3)
    assert c.ci95 == pytest.approx(ci, rel=1e-12)
    assert c.seeds == ["0", "1", "2"] and c.distinguishable
    assert c.text == (f"optim=adam is {c.difference * 100:.1f} ± {ci * 100:.1f} points better "
                      f"(p={c.p_value:.2g}, 3 seeds)")
    # The other way round: the same words, the difference negated.
    back = paired_comparison(B, A)
    assert back.difference == pytest.approx(-c.difference) and back.text == c.text


def test_a_lower_loss_is_better():
    c = paired_comparison(A, B, "test_loss")
    assert c.text.startswith("optim=adam is better: its test_loss is ")
    assert " lower (p=" in c.text


def test_noisy_groups_are_not_distinguishable_and_say_how_many_seeds_would_tell():
    a = group("sgd", [0.40, 0.45, 0.38, 0.43])
    b = group("adam", [0.42, 0.44, 0.41, 0.42])
    c = paired_comparison(a, b)
    diffs = [0.02, -0.01, 0.03, -0.01]
    assert c.p_value == pytest.approx(stats.ttest_rel([0.42, 0.44, 0.41, 0.42],
                                                      [0.40, 0.45, 0.38, 0.43]).pvalue)
    assert not c.distinguishable
    sd, mean = statistics.stdev(diffs), statistics.fmean(diffs)
    n = c.seeds_needed
    # The fewest seeds whose half-width at this spread falls below the difference.
    assert half_width(sd, n) < abs(mean) <= half_width(sd, n - 1)
    assert c.text.startswith("optim=sgd and optim=adam are not distinguishable with 4 seeds")
    assert c.text.endswith(f"about {n} seeds would tell")


def test_only_common_seeds_are_paired():
    a = group("sgd", [0.40, 0.41, 0.39], ["0", "1", "2"])
    b = group("adam", [0.42, 0.43, 0.50], ["0", "1", "7"])
    c = paired_comparison(a, b)
    assert c.seeds == ["0", "1"]
    assert "cannot be compared" in paired_comparison(a, group("x", [0.4], ["9"])).text
    assert seeds_needed(0.01, 0.0) is None


def test_the_report_section_compares_the_best_group_with_the_others():
    text = comparisons_section(seed_groups([*A.runs, *B.runs]))
    assert "**optim=adam**" in text
    assert f"- vs optim=sgd: {paired_comparison(A, B).text}." in text
