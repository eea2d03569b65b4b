"""A sweep's run names, table and legends show every key it varies, not only the default
name's (init, lr, n_train, seed)."""

from omegaconf import OmegaConf

from experiments.reporting.collect import RunSummary
from experiments.reporting.curves import curves_figure
from experiments.reporting.figures import accuracy_vs_size_figure
from experiments.reporting.summary import summary_rows
from experiments.runs.tracked import SweptValues, default_run_name
from experiments.sweeps.job import job_values
from experiments.sweeps.plan import swept_keys

CFG = OmegaConf.create({"model": {"name": "seed"}, "init": {"name": "he"},
                        "optim": {"lr": 0.03}, "data": {"n_train": 1000},
                        "trainer": {"seed": 0, "batch_size": 32}})
BATCH_SWEEP = ["init=he", "optim.lr=0.03", "data.n_train=1000",
               "trainer.batch_size=32,128,512"]


def test_the_keys_a_sweep_varies_are_its_lists_on_the_command_line_and_in_its_preset():
    assert swept_keys(BATCH_SWEEP, {}) == {"trainer.batch_size": ["32", "128", "512"]}
    preset = {"init": "he,xavier", "optim.lr": "0.003,0.03", "data.n_train": "1000,2000"}
    # One value on the command line replaces a preset's list: that key is not swept.
    assert swept_keys(["data.n_train=200", "trainer.seed=0,1"], preset) == {
        "init": ["he", "xavier"], "optim.lr": ["0.003", "0.03"], "trainer.seed": ["0", "1"]}
    # A search's distributions are swept keys whose values are drawn.
    assert swept_keys([], {"optim.lr": "tag(log, interval(0.001, 0.3))"}) == {"optim.lr": []}


def name(job_overrides, swept):
    cfg = OmegaConf.merge(CFG, OmegaConf.from_dotlist(
        [o for o in job_overrides if "." in o.split("=")[0]]))
    return default_run_name(cfg, job_values(job_overrides, swept))


def test_each_batch_size_of_a_sweep_has_its_own_name():
    swept = swept_keys(BATCH_SWEEP, {})
    names = [name(["init=he", "optim.lr=0.03", "data.n_train=1000",
                   f"trainer.batch_size={b}"], swept) for b in (32, 128, 512)]
    assert names == ["seed-he-lr0.03-n1000-s0-batch_size=32",
                     "seed-he-lr0.03-n1000-s0-batch_size=128",
                     "seed-he-lr0.03-n1000-s0-batch_size=512"]


def test_names_of_sweeps_over_the_default_keys_read_as_before():
    swept = {"init": ["he", "xavier"], "optim.lr": ["0.03"], "trainer.seed": ["0", "1"]}
    assert name(["init=he", "optim.lr=0.03", "trainer.seed=0"], swept) == \
        "seed-he-lr0.03-n1000-s0"
    # The depth study's norms: batch or none, which "-nonorm" already tells apart ...
    depth = OmegaConf.merge(CFG, {"model": {"name": "plain", "depth": 8, "norm": "none"}})
    assert default_run_name(depth, SweptValues({"model.norm": "none", "model.depth": "8"},
                                               {"model.norm": ["batch", "none"]})) == \
        "plain8-nonorm-he-lr0.03-n1000-s0"
    # ... but not batch from layer.
    assert default_run_name(depth, SweptValues({"model.norm": "layer"},
                                               {"model.norm": ["batch", "layer"]})) == \
        "plain8-nonorm-he-lr0.03-n1000-s0-norm=layer"
    # An optimiser (a group) and a float knob, by their last part, the float as %g.
    assert default_run_name(CFG, SweptValues(
        {"optim": "adam", "optim.weight_decay": "5.6322663392735724e-05"}, {})) == \
        "seed-he-lr0.03-n1000-s0-optim=adam-weight_decay=5.63227e-05"
    assert default_run_name(CFG) == "seed-he-lr0.03-n1000-s0"  # outside a sweep


def run(batch, seed, acc):
    return RunSummary(run_id=f"{batch}-{seed}", name=f"r{batch}-{seed}", status="FINISHED",
                      init="he", lr=0.03, n_train="1000", seed=str(seed),
                      curves={"train_loss": [2.0, 1.5]}, test_acc=acc,
                      swept={"trainer.batch_size": str(batch), "trainer.seed": str(seed)})


RUNS = [run(32, 0, 0.40), run(32, 1, 0.42), run(128, 0, 0.35), run(128, 1, 0.36)]


def test_the_table_has_a_column_per_swept_key():
    rows = summary_rows(RUNS)
    assert list(rows[0])[:6] == ["run", "init", "lr", "n_train", "seed", "trainer.batch_size"]
    assert [(r["trainer.batch_size"], r["seed"]) for r in rows] == [
        ("128", "0"), ("128", "1"), ("32", "0"), ("32", "1")]


def legend_labels(fig):
    return [t.get_text() for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
            if legend is not None for t in legend.get_texts()]


def test_the_legends_name_the_swept_keys():
    # One colour per batch size (its seeds' mean); the size is not swept, so not named.
    colours = curves_figure(RUNS, [("train_loss", "training")], "loss", True).legends[0]
    assert [t.get_text() for t in colours.get_texts()] == ["batch_size=32", "batch_size=128"]
    # One line per batch size, its seeds averaged, rather than all four averaged together.
    assert sorted(legend_labels(accuracy_vs_size_figure(RUNS))) == [
        "he, batch_size=128", "he, batch_size=32"]
