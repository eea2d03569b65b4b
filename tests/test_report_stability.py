"""The Edge of Stability sweep: its preset is full-batch gradient descent with the
sharpness measured, and its report tables and draws each rate's sharpness against 2/lr."""

import pytest

from experiments.reporting.collect import RunSummary
from experiments.reporting.stability import SharpnessRun, stability_figure, stability_section


def _hydra_cfg(overrides):
    from hydra import compose, initialize_config_module

    from experiments.config import register_configs

    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_the_preset_is_full_batch_gradient_descent_with_the_sharpness_measured():
    from experiments.config import config_from_container, validate

    cfg = _hydra_cfg(["sweep=stability"])
    rates = [float(r) for r in cfg.hydra.sweeper.params["optim.lr"].split(",")]
    assert len(rates) >= 3 and rates == sorted(rates)
    assert cfg.trainer.batch_size == cfg.data.n_train == cfg.trainer.sharpness_images
    assert cfg.optim.momentum == 0 and cfg.schedule.name == "constant"
    assert cfg.optim.weight_decay == 0 and cfg.trainer.sharpness_every > 0
    assert cfg.model.name == "seed"  # no batch norm: a full batch is one function
    job = config_from_container({k: v for k, v in cfg.items() if k != "hydra"})
    validate(job)


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
