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
CHILDREN = ["seed-he-lr0.03-n100-s0", "seed-xavier-lr0.03-n100-s0",
            "seed-unit_normal-lr0.03-n100-s0"]
# What MLflow 3.17 shows when it opens an experiment in its GenAI mode: an overview of traces.
GENAI_OVERVIEW = ("Token Usage", "Tool calls", "Tokens per Trace")


@pytest.fixture(scope="module")
def sweep(module_harness_cli):
    cli = module_harness_cli
    done = cli.run("experiments.train", "-m", *TINY, "init=he,xavier,unit_normal",
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
    assert summary[0].endswith(": 3 runs: 3 FINISHED.")
    assert summary[1] == "Runs by test accuracy:"
    ranked = sorted(sweep.children, key=lambda r: -r.data.metrics["test_acc"])
    assert summary[2:5] == [f"  {i}. {r.data.metrics['test_acc']:.4f}  {r.info.run_name}"
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
        "its runs compared": links(sweep.stdout)["its runs compared"],
        "the experiment": f"http://127.0.0.1:5000/#/experiments/{experiment}/runs"
                          "?workflowType=machine_learning"}
    assert re.match(r"  the experiment: +http://", summary[-1])  # nothing printed after it


def test_the_parent_run_holds_the_sweeps_metrics_and_figures(sweep):
    metrics = sweep.parent.data.metrics
    assert {k: metrics[k] for k in ("runs", "runs_finished", "runs_failed", "runs_killed")} == {
        "runs": 3, "runs_finished": 3, "runs_failed": 0, "runs_killed": 0}
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
    page = browser(printed["its runs compared"])
    assert f"Comparing {len(CHILDREN)} Runs" in page, page[:3000]
    for name in CHILDREN:
        assert name in page, (name, page[:3000])


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
