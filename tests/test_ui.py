"""A tiny sweep, then what a person sees: the summary it ends on in the terminal, its
parent run's metrics, and MLflow's UI (`python -m experiments.ui`, what `make ui` runs)
rendered by a headless chromium at the links the two commands print."""

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.mlflow]

TINY = ["model=seed", "data.n_train=100", "data.n_val=50", "trainer.epochs=1",
        "trainer.batch_size=50", "trainer.progress=false", "trainer.health_checks=false",
        "tracking.log_model=false"]
CHILDREN = ["seed-he-lr0.03-n100-s0", "seed-he-lr0.03-n100-s1", "seed-xavier-lr0.03-n100-s0",
            "seed-xavier-lr0.03-n100-s1"]
# What MLflow 3.17 shows when it opens an experiment in its GenAI mode: an overview of traces.
GENAI_OVERVIEW = ("Token Usage", "Tool calls", "Tokens per Trace")


@pytest.fixture(scope="module")
def sweep(module_harness_cli):
    cli = module_harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "init=he,xavier", "trainer.seed=0,1",
                   f"hydra.sweep.dir={cli.folder / 'multirun'}")
    assert done.returncode == 0, done.stdout + done.stderr
    client = cli.client()
    experiment = client.get_experiment_by_name("cifar10-cnn")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "sweep_dir" in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return SimpleNamespace(cli=cli, client=client, experiment=experiment, parent=parent,
                           children=children, stdout=done.stdout)


def links(text: str) -> dict[str, str]:
    """The `  <what>: http://...` lines a command printed, by what they open."""
    return {m[1]: m[2] for m in re.finditer(r"^ +([^:\n]+): +(http://\S+)$", text, re.M)}


def test_the_experiment_is_tagged_as_model_training(sweep):
    assert sweep.experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_experiment_created_before_gets_the_tag_when_used(harness_cli):
    client = harness_cli.client()
    old = client.create_experiment("older")
    code = ("from experiments.tracking.store import use_store; "
            "print(use_store(None, 'older'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=harness_cli.folder,
                          env=harness_cli.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_make_ui_on_a_port_in_use_says_so(harness_cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = harness_cli.run("experiments.ui", "--port", str(port), timeout=120)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "make ui PORT=5001" in done.stderr


def test_the_sweep_ends_on_its_summary(sweep):
    summary = sweep.stdout[sweep.stdout.rindex("Sweep custom done in"):].splitlines()
    assert summary[0].endswith(": 4 runs: 4 FINISHED.")
    assert summary[1] == "Runs by test accuracy:"
    ranked = sorted(sweep.children, key=lambda r: -r.data.metrics["test_acc"])
    assert summary[2:6] == [f"  {i}. {r.data.metrics['test_acc']:.4f}  {r.info.run_name}"
                            for i, r in enumerate(ranked, 1)]
    report = sweep.cli.folder / "multirun" / "report"
    assert f"Report: {report}/ (summary.md, summary.csv, figures)," in summary
    assert (report / "summary.md").is_file()
    assert sweep.parent.info.run_id in summary[summary.index(f"Report: {report}/ (summary.md, "
                                                             "summary.csv, figures),") + 1]
    parent, experiment = sweep.parent.info.run_id, sweep.experiment.experiment_id
    assert links("\n".join(summary)) == {
        "the sweep (metrics, child runs)": f"http://127.0.0.1:5000/#/experiments/{experiment}"
                                           f"/runs/{parent}?workflowType=machine_learning",
        "its runs' curves": f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
                            f"?viewStateShareKey=sweep-{parent}&compareRunsMode=CHART"
                            "&workflowType=machine_learning",
        "the experiment": f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
                          "?workflowType=machine_learning"}
    assert re.match(r"  the experiment: +http://", summary[-1])  # nothing printed after it


def test_the_parent_run_holds_the_sweeps_metrics_and_figures(sweep):
    metrics = sweep.parent.data.metrics
    assert {k: metrics[k] for k in ("runs", "runs_finished", "runs_failed", "runs_killed")} == {
        "runs": 4, "runs_finished": 4, "runs_failed": 0, "runs_killed": 0}
    assert metrics["best_test_acc"] == max(r.data.metrics["test_acc"] for r in sweep.children)
    assert 0 < metrics["sweep_wall_time_s"] < 600
    images = [a.path for a in sweep.client.list_artifacts(sweep.parent.info.run_id, "images")]
    for key in ("learning_curves_loss", "learning_curves_acc", "accuracy_by_group"):
        assert any(p.startswith(f"images/{key}+step+0+") for p in images), images


@pytest.fixture(scope="module")
def ui(sweep, browser):
    """`python -m experiments.ui` on a free loopback port over the sweep's store."""
    from experiments.tracking.server import free_port

    port = free_port()
    process = sweep.cli.start("experiments.ui", "--port", str(port))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    printed, deadline = "", time.monotonic() + 180
    try:
        while "Ctrl-C stops it." not in printed:
            try:
                printed += lines.get(timeout=1)
            except queue.Empty:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"experiments.ui exited or printed no link: {printed}")
        yield SimpleNamespace(port=port, printed=printed, address=f"http://127.0.0.1:{port}")
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: it stops its server and returns
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def test_make_ui_prints_the_link_that_opens_the_runs(sweep, ui, browser):
    link = f"{ui.address}/#/experiments/{sweep.experiment.experiment_id}/runs" \
           "?workflowType=machine_learning"
    assert f"  {link}\n" in ui.printed
    page = browser(link)
    assert "Run Name" in page and sweep.parent.info.run_name in page, page[:3000]
    assert not any(marker in page for marker in GENAI_OVERVIEW), page[:3000]


def test_without_the_link_mlflow_opens_the_genai_overview(sweep, ui, browser):
    # Why the link matters: what the markers above tell apart, on the same store.
    page = browser(f"{ui.address}/#/experiments/{sweep.experiment.experiment_id}")
    assert all(marker in page for marker in GENAI_OVERVIEW), page[:3000]


def test_the_sweep_says_how_to_open_its_links_on_another_port(sweep):
    hint = next(line for line in sweep.stdout.splitlines() if "Open it in MLflow's UI" in line)
    assert "port 5000" in hint and "`make ui PORT=N` reprints these links on port N" in hint


def test_make_ui_prints_the_latest_sweeps_links_on_its_own_port(sweep, ui):
    # The sweep printed them for port 5000; the UI runs on another.
    assert ui.port != 5000
    assert links(ui.printed) == {what: link.replace("http://127.0.0.1:5000", ui.address)
                                 for what, link in links(sweep.stdout).items()}
    assert f"The latest sweep, {sweep.parent.info.run_name}:" in ui.printed


def test_the_sweeps_links_show_its_runs_and_metrics(sweep, ui, browser):
    printed = links(ui.printed)  # as `make ui PORT=...` prints them
    assert len(printed) == 3, ui.printed
    page = browser(printed["the sweep (metrics, child runs)"])
    for name in [*CHILDREN, "best_test_acc", "runs_finished", "sweep_wall_time_s"]:
        assert name in page, (name, page[:3000])
    assert not any(marker in page for marker in GENAI_OVERVIEW), page[:3000]


# The chart cards a page shows, in its order: each card's title (its first line) and its
# legend's entries, "<run name> (<metric>)".
CHART_CARDS = """(() => {
  const cards = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    let card = plot.parentElement;
    while (card.parentElement.querySelectorAll('.js-plotly-plot').length === 1)
      card = card.parentElement;
    const lines = card.innerText.split('\\n').map(l => l.trim()).filter(Boolean);
    cards.push({title: lines[0], legend: lines.filter(l => l.endsWith(`(${lines[0]})`))});
  }
  return cards;
})()"""


def test_the_sweeps_link_draws_every_childs_curves_on_one_chart(sweep, ui, live_page,
                                                                 tmp_path):
    # Before, "its runs compared" opened a parallel-coordinates plot of conv1.act_mean, and
    # the runs' chart view drew the parent alone, its children collapsed under it.
    page = live_page(links(ui.printed)["its runs' curves"])
    names = {r.info.run_name for r in sweep.children}
    expected = {"val_acc", "train_loss"}
    cards = page.wait_for(
        f"(() => {{ const cards = {CHART_CARDS}; "
        f"return cards.filter(c => {sorted(expected)}.includes(c.title) "
        f"&& c.legend.length === {len(names)}).length === 2 ? cards : null; }})()")
    page.screenshot(tmp_path / "curves.png")
    assert cards, page.evaluate(CHART_CARDS)
    assert [c["title"] for c in cards[:2]] == ["val_acc", "train_loss"], cards
    for card in cards[:2]:
        assert {entry.rsplit(" (", 1)[0] for entry in card["legend"]} == names, card
    text = page.evaluate("document.body.innerText")
    assert "You're viewing a shared view" in text  # the sweep's saved view, not a default
    for group in ("init=he", "init=xavier"):  # its runs by seed group, not under the parent
        assert f"Group: {group}" in text, text[:3000]


def test_a_runs_main_curves_come_before_its_per_layer_statistics(sweep, ui, live_page):
    # Before, the charts ran alphabetically: conv1.act_mean ... relu2.dead_frac, then
    # test_acc, train_loss, val_acc, val_loss last.
    child = next(r for r in sweep.children if r.info.run_name == CHILDREN[0])
    metrics = set(child.data.metrics)
    per_layer = {k for k in metrics if k.rsplit(".", 1)[-1] in
                 {"act_mean", "act_std", "dead_frac", "grad_norm", "update_ratio"}}
    assert len(per_layer) > 20, sorted(metrics)
    page = live_page(f"{ui.address}/#/experiments/{sweep.experiment.experiment_id}/runs/"
                     f"{child.info.run_id}/model-metrics?workflowType=machine_learning",
                     size=(1600, 2600))  # room for the 9 main charts and more: 6 rows of 3
    text = page.wait_for("(() => { const t = document.body.innerText; "
                         "return t.includes('val_loss') && t.includes('val_acc') ? t : null; })()")
    assert text, page.evaluate("document.body.innerText")[:3000]
    titles = [line for line in dict.fromkeys(text.split("\n")) if line in metrics]
    first_layer = min(i for i, t in enumerate(titles) if t in per_layer)
    assert {"train_loss", "val_acc", "val_loss", "train_acc"} <= set(titles[:first_layer]), titles


def test_the_summary_in_the_ui_shows_its_tables_unsqueezed(sweep, ui, live_page, tmp_path):
    # Before, summary.md was one table of 13 columns, its headers cut ("train_lo…") and
    # its cells broken mid-word ("FINIS / HED") beside the artifact tree.
    page = live_page(f"{ui.address}/#/experiments/{sweep.experiment.experiment_id}/runs/"
                     f"{sweep.parent.info.run_id}/artifacts/report/summary.md"
                     "?workflowType=machine_learning")
    # MLflow draws a markdown table as a virtualized grid (role=table), a cell's text in a
    # span it cuts with an ellipsis when the column is too narrow.
    tables = page.wait_for("""(() => {
      const tables = [...document.querySelectorAll('[role=table]')];
      return tables.length ? tables.map(t => {
        const columns = t.querySelectorAll('[role=columnheader]').length;
        return [...t.querySelectorAll('[role=columnheader], [role=cell]')].map(c => ({
          text: c.innerText.trim(), columns,
          cut: [c, ...c.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)}));
      }) : null; })()""")
    page.screenshot(tmp_path / "summary.png")
    assert tables, page.evaluate("document.body.innerText")[:3000]
    cells = [c for table in tables for c in table]
    assert max(c["columns"] for c in cells) <= 7, cells
    assert not [c["text"] for c in cells if c["cut"]], cells
    assert any(c["text"] == "FINISHED" for c in cells)
    for name in CHILDREN:  # every run is there, the report's numbers with it
        assert any(c["text"] == name for c in cells), name


def test_the_parent_runs_charts_show_the_sweeps_metrics(sweep, ui, browser):
    # Before, the parent had no metrics: "No charts in this section".
    url = (f"{ui.address}/#/experiments/{sweep.experiment.experiment_id}/runs/"
           f"{sweep.parent.info.run_id}/model-metrics?workflowType=machine_learning")
    # Every metric the parent logged (the sweep's, and its best seed group's: with one seed
    # a group has no interval), and the report's 3 figures, as images. The UI sorts the
    # charts by name and draws the first ones that fit the window.
    logged = sweep.client.get_run(sweep.parent.info.run_id).data.metrics
    assert {"best_test_acc", "best_group_n", "best_group_test_acc_mean"} <= set(logged)
    first = sorted(logged)[0]
    page = browser(url)
    for budget_ms in (40000, 80000):  # on a busy machine the charts may render late
        if first in page:
            break
        page = browser(url, budget_ms=budget_ms)
    assert "No charts in this section" not in page, page[:3000]
    assert f"Model metrics\n({len(logged) + 3})" in page, page[:3000]
    assert first in page, page[:3000]
