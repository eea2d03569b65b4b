"""A sweep's figures read well whatever it sweeps: seeds drawn as a mean with a band and a
per-group interval, no "None" in a legend, titles inside the figure, loss axes that the
healthy runs set, validation beside training loss, and an x where a failed run stopped."""

import math

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from scipy import stats

from experiments.reporting.collect import RunSummary
from experiments.reporting.curves import curves_figure
from experiments.reporting.figures import accuracy_vs_size_figure, sweep_figures
from experiments.tracking import tags

LOSS = [("train_loss", "training"), ("val_loss", "validation")]


def run(seed, init="he", lr=0.03, n_train="1000", status="FINISHED", epochs=4, acc=0.5,
        first_loss=None, failed_in=None, **swept):
    train = list(np.linspace(2.3, 1.0, epochs) - 0.01 * int(seed))
    if first_loss is not None:
        train[0] = first_loss
    curves = {"train_loss": train, "val_loss": [v + 0.2 for v in train],
              "val_acc": list(np.linspace(0.2, acc, epochs))}
    found = {}
    if failed_in is not None:  # diverged during epoch failed_in: epochs before it logged
        curves = {k: v[:failed_in - 1] for k, v in curves.items()}
        found = {tags.FAILURE_EPOCH: str(failed_in), tags.FAILURE_STEP: "7"}
    keys = {"init": init, "optim.lr": str(lr), **swept, "trainer.seed": str(seed)}
    return RunSummary(run_id=f"{keys}", name=f"{keys}", status=status, init=init, lr=lr,
                      n_train=n_train, seed=str(seed), curves=curves,
                      test_acc=None if status != "FINISHED" else acc + 0.01 * int(seed),
                      test_loss=None if status != "FINISHED" else 1.0, tags=found,
                      failure="loss became nan at epoch 1, step 7" if found else "",
                      params=dict(keys), swept=keys)


# experiment=seed_subset trainer.seed=0,1,2: every image (n_train null), no size swept.
SEEDS = [run(s, init="pytorch", lr=0.05, n_train="None", acc=0.85) for s in range(3)]


def legend_texts(fig):
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    return [t.get_text() for legend in legends if legend is not None
            for t in [*legend.get_texts(), legend.get_title()]]


def all_figures(runs):
    return [*sweep_figures(runs)[0].values()]


def test_a_seed_sweep_gets_its_groups_accuracy_with_its_interval_not_an_empty_figure():
    figures, note = sweep_figures(SEEDS)
    assert "accuracy_vs_size.png" not in figures
    assert "one training-set size (n_train=all)" in note
    (ax,) = figures["accuracy_by_group.png"].axes
    values = [0.85, 0.86, 0.87]
    seeds = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sorted(seeds[0].get_xdata()) == pytest.approx(values)
    mean = next(ln for ln in ax.lines if ln.get_marker() == "D")
    assert mean.get_xdata() == pytest.approx([np.mean(values)])
    (bar,) = [c for c in ax.collections if c.get_segments()]  # the interval's bar
    (low, _), (high, _) = bar.get_segments()[0]
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert (low, high) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    assert "(3 seeds)" in ax.get_yticklabels()[0].get_text()


def test_no_legend_of_a_seed_sweep_says_none():
    for fig in all_figures(SEEDS):
        assert not [t for t in legend_texts(fig) if "None" in t or "n=" in t]
    assert not [t for fig in all_figures(SEEDS) for ax in fig.axes
                for t in [ax.get_title(), *(label.get_text() for label in ax.get_yticklabels())]
                if "None" in t]


def test_seeds_are_drawn_as_their_mean_with_a_min_max_band():
    fig = curves_figure(SEEDS, LOSS, "loss", True)
    (ax,) = fig.axes
    train = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    assert len(train) == 1  # one line for the group, not one per seed
    expected = np.mean([r.curves["train_loss"] for r in SEEDS], axis=0)
    assert train[0].get_ydata() == pytest.approx(expected)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands, "no band"
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(max(max(r.curves["train_loss"]) for r in SEEDS))
    assert any("min-max" in t for t in legend_texts(fig))


def title_inside(fig):
    """Whether the title lies inside the figure, clear of its legends."""
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    page = fig.bbox
    legends = [legend.get_window_extent() for legend in fig.legends]
    return (page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
            and box.y1 <= page.y1 and not any(box.overlaps(legend) for legend in legends))


@pytest.mark.parametrize("panels", [1, 3, 12, 40])
def test_titles_lie_inside_their_figures(panels):
    runs = [run(0, lr=0.001 * (k + 1), n_train=n, **{"data.n_train": n})
            for k in range(panels) for n in ("250", "1000")]
    assert title_inside(accuracy_vs_size_figure(SEEDS))  # one learning rate: a narrow figure
    figures = sweep_figures(runs)[0]
    assert len(figures["accuracy_vs_size.png"].axes) == panels
    for name, fig in figures.items():
        assert title_inside(fig), name
    fig = curves_figure(runs, LOSS, "loss", True)
    assert len(fig.axes) == panels
    assert fig.get_figwidth() <= 25 and fig.get_figheight() <= 25


def test_a_batch_size_sweeps_legends_name_the_batch_size():
    runs = [run(s, **{"trainer.batch_size": b}) for b in ("32", "128", "512") for s in "01"]
    for fig in all_figures(runs)[:2]:
        assert {"batch_size=32", "batch_size=128", "batch_size=512"} <= set(legend_texts(fig))
    labels = [t.get_text() for t in all_figures(runs)[2].axes[0].get_yticklabels()]
    assert [t.split()[0] for t in labels] == ["batch_size=32", "batch_size=128",
                                              "batch_size=512"]


# The convergence sweep's loss figure: 12 panels; unit_normal's first epoch at 1e7.
GRID = [run(s, init=i, lr=lr, first_loss=1e7 if (i, lr) == ("unit_normal", 0.01) else None)
        for i in ("he", "xavier", "unit_normal") for lr in (0.01, 0.03, 0.1, 0.3) for s in "01"
        if (i, lr, s) != ("unit_normal", 0.3, "1")]
GRID.append(run(1, init="unit_normal", lr=0.3, status="FAILED", failed_in=1))


def test_the_loss_axis_is_set_by_the_healthy_runs_not_the_worst_epoch():
    fig = curves_figure(GRID, LOSS, "loss", True)
    assert len(fig.axes) == 12
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert 2.5 < high < 30, ax.get_title()  # every loss shown is in 1..2.5, the rest 1e7
        assert low < 1.0
    blown = next(ax for ax in fig.axes if ax.get_title() == "unit_normal, lr 0.01")
    edge = [ln for ln in blown.lines if ln.get_marker() == "^"]
    assert edge and edge[0].get_ydata() == pytest.approx([blown.get_ylim()[1]])
    assert edge[0].get_xdata() == pytest.approx([1])


def test_validation_loss_is_drawn_dashed_beside_training_loss_in_its_colour():
    fig = curves_figure(GRID, LOSS, "loss", True)
    for ax in fig.axes:
        solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
        dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
        assert solid and dashed, ax.get_title()
        assert to_rgba(solid[0].get_color()) == to_rgba(dashed[0].get_color())
        assert dashed[0].get_ydata()[-1] == pytest.approx(solid[0].get_ydata()[-1] + 0.2,
                                                          abs=0.02)
    assert {"training", "validation"} <= set(legend_texts(fig))


def test_a_run_that_diverged_is_marked_with_an_x_where_it_stopped():
    for fig in (curves_figure(GRID, LOSS, "loss", True),
                curves_figure(GRID, [("val_acc", "validation")], "accuracy", False)):
        marked = {ax.get_title(): [ln for ln in ax.lines if ln.get_marker() == "x"]
                  for ax in fig.axes}
        assert [t for t, x in marked.items() if x] == ["unit_normal, lr 0.3"]
        (x,) = marked["unit_normal, lr 0.3"]
        assert list(x.get_xdata()) == [1.0]  # in epoch 1 (at step 7), which it never logged
        assert "x: where a run stopped" in fig._suptitle.get_text()


def test_a_killed_run_is_marked_at_its_last_epoch():
    killed = run(1, status="KILLED", epochs=3)
    fig = curves_figure([run(0), killed], LOSS, "loss", True)
    (x,) = [ln for ln in fig.axes[0].lines if ln.get_marker() == "x"]
    assert list(x.get_xdata()) == [3.0]
    assert x.get_ydata()[0] == pytest.approx(killed.curves["train_loss"][-1])
