"""A batch-size sweep's report (experiments.reporting.noise_scale): the target every run
reached, each batch size's steps to it and its noise scale, in summary.md and a figure."""

import math

import numpy as np

from experiments.reporting.collect import RunSummary
from experiments.reporting.noise_scale import (
    at_target,
    noise_scale_figure,
    noise_scale_section,
    sweeps_batch_size,
    target_accuracy,
)


def run(batch, seed, acc, noise, steps_per_epoch, status="FINISHED"):
    curves = {"val_acc": acc, "grad_noise_scale": noise,
              "steps": [steps_per_epoch * (e + 1) for e in range(len(acc))]}
    params = {"trainer.batch_size": str(batch), "trainer.seed": str(seed)}
    return RunSummary(run_id=f"{batch}-{seed}", name=f"b{batch}-s{seed}", status=status,
                      init="he", lr=0.03, n_train="2000", seed=str(seed), curves=curves,
                      params=params)


RUNS = [
    run(32, 0, [0.30, 0.42, 0.50], [40.0, 60.0, 80.0], 63),
    run(32, 1, [0.32, 0.41, 0.52], [42.0, math.nan, 82.0], 63),
    run(128, 0, [0.20, 0.33, 0.415], [35.0, 55.0, 70.0], 16),
    run(128, 1, [0.22, 0.30, 0.39], [30.0, 50.0, 75.0], 16),
]


def test_the_target_is_what_every_run_reached_and_steps_count_to_its_epoch():
    assert sweeps_batch_size(RUNS)
    assert not sweeps_batch_size([r for r in RUNS if r.params["trainer.batch_size"] == "32"])
    assert target_accuracy(RUNS, "val_acc") == 0.39  # the worst run's best, rounded down
    first = at_target(RUNS[0], "val_acc", 0.39)  # reached in epoch 2: 126 steps
    assert first.steps == 126 and first.batch == 32 and first.noise == 50.0
    slow = at_target(RUNS[3], "val_acc", 0.39)
    assert slow.steps == 48 and slow.noise == np.mean([30.0, 50.0, 75.0])
    # A NaN noise scale (|G|^2 estimate <= 0) is left out of the mean.
    assert at_target(RUNS[1], "val_acc", 0.39).noise == 42.0
    assert at_target(RUNS[0], "val_acc", 0.9).steps is None


def test_summary_section_and_figure_show_steps_beside_the_noise_scale():
    section = noise_scale_section(RUNS)
    assert "Target: val_acc 0.39" in section
    assert "| 32 | 2 | 126 | 46 |" in section  # (50 + 42) / 2
    assert "| 128 | 2 | 48 | 52.5 |" in section  # both in epoch 3; (53.33 + 51.67) / 2
    fig = noise_scale_figure(RUNS)
    steps_ax, noise_ax = fig.axes
    mean_line = next(line for line in steps_ax.lines if line.get_label() == "mean over seeds")
    assert list(mean_line.get_xdata()) == [32, 128]
    assert list(mean_line.get_ydata()) == [126, 48]
    assert len(noise_ax.lines) == 4
    assert any("noise scale (median)" in t.get_text() for t in steps_ax.get_legend().get_texts())
