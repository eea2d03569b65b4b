"""The Edge of Stability sweep's report tables and draws each rate's sharpness against
2/lr (its preset is tested with the others, in tests/test_harness_config.py)."""

import pytest

from experiments.reporting.collect import RunSummary
from experiments.reporting.stability import SharpnessRun, stability_figure, stability_section


def run(lr, sharp, loss=(2.3, 1.0, 0.1)):
    r = RunSummary(run_id=f"r{lr}", name=f"seed-lr{lr}", status="FINISHED", init="pytorch",
                   lr=lr, n_train="500", seed="0", curves={"train_loss": list(loss)})
    return SharpnessRun(r, sharp, {step: 2 / lr for step in sharp})


def test_the_section_gives_start_largest_last_third_and_threshold():
    s = run(0.08, {0: 30.0, 20: 45.0, 40: 80.0, 60: 26.0, 80: 24.0, 100: 25.0, 120: 27.0})
    assert (s.start, s.largest, s.limit) == (30.0, 80.0, 25.0)
    assert s.last_third == pytest.approx((24.0 + 25.0 + 27.0) / 3)  # steps 80 to 120
    row = next(line for line in stability_section([s]).splitlines() if "seed-lr0.08" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:] == ["0.08", "30", "80", "25.33", "25", "1.01"]


def test_the_figure_has_a_panel_per_rate_with_its_threshold():
    runs = [run(0.01, {0: 10.0, 20: 12.0}), run(0.08, {0: 30.0, 20: 26.0})]
    fig = stability_figure(runs)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["lr 0.01", "lr 0.08"]
    for ax, lr in zip(panels, (0.01, 0.08), strict=True):
        thresholds = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert [line.get_ydata()[0] for line in thresholds] == [pytest.approx(2 / lr)]
