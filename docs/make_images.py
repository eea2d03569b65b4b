"""Make the README's pictures (docs/images/*.png) from a real sweep logged to an MLflow store.

    python docs/make_images.py --tracking-uri sqlite:///<store>/mlflow.db   # after a sweep
    make docs-images                      # runs a small sweep into outputs/docs-images/ first

From the store's latest sweep it takes the parent run's learning-curve grid
(report/learning_curves_loss.png) and the gradient-flow heat map of its best run
(figures/gradient_flow.png), then starts MLflow's UI on the store (python -m
experiments.ui, what `make ui` runs) and has a headless chromium photograph the view of
the sweep's curves that its link opens. Each picture is stored as an 8-bit palette PNG,
so that each stays under 150 KB.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
EXPERIMENT = "cifar10-cnn"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
MAX_BYTES = 150_000
# Which of the latest sweep's links `make ui` prints the picture shows.
WHICH_LINK = "its runs' curves"


def latest_sweep(client, experiment_id: str):
    """The newest parent run of a sweep (tagged sweep_dir) and its child runs."""
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    parent = next((r for r in runs if "sweep_dir" in r.data.tags), None)
    if parent is None:
        sys.exit(f"no sweep in experiment {EXPERIMENT!r}: run `make sweep` first")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def save_small(source: Path, target: Path, width: int) -> None:
    """`source` scaled to `width` pixels wide, as a palette PNG under MAX_BYTES."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.Resampling.LANCZOS)
        for colours in (256, 128, 64):
            image.quantize(colours).save(target, optimize=True)
            if target.stat().st_size < MAX_BYTES:
                break
    print(f"{target.relative_to(IMAGES.parent.parent)}: {target.stat().st_size // 1000} KB")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def photograph_ui(tracking_uri: str, out: Path) -> None:
    """Start the UI on the store, photograph its view of the sweep's curves, stop the UI."""
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    ui = subprocess.Popen([sys.executable, "-m", "experiments.ui", "--port", str(free_port()),
                           "--tracking-uri", tracking_uri], stdout=subprocess.PIPE, text=True)
    try:
        links = {}
        for line in ui.stdout:  # the links are printed once the UI answers
            if (found := re.match(r"^ +([^:\n]+): +(http://\S+)$", line)) is not None:
                links[found[1]] = found[2]
            if line.startswith("Ctrl-C"):
                break
        link = next((u for what, u in links.items() if what.startswith(WHICH_LINK)), None)
        if link is None:
            sys.exit(f"python -m experiments.ui printed no link to {WHICH_LINK!r}: {links}")
        time.sleep(2)
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            "--window-size=1600,1000", "--virtual-time-budget=90000",
                            f"--screenshot={out}", link],
                           check=True, capture_output=True, timeout=180)
    finally:
        ui.terminate()  # experiments.ui ends MLflow's server and all it started on SIGTERM
        ui.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True, help="the store the sweep logged to")
    args = parser.parse_args(argv)

    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(args.tracking_uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        sys.exit(f"{args.tracking_uri} has no experiment {EXPERIMENT!r}: run `make sweep` first")
    parent, children = latest_sweep(client, experiment.experiment_id)
    finished = [r for r in children if "test_acc" in r.data.metrics]
    best = max(finished, key=lambda r: r.data.metrics["test_acc"])
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        curves = client.download_artifacts(parent.info.run_id,
                                           "report/learning_curves_loss.png", str(work))
        save_small(Path(curves), IMAGES / "learning_curves.png", 1000)
        flow = client.download_artifacts(best.info.run_id, "figures/gradient_flow.png",
                                         str(work))
        save_small(Path(flow), IMAGES / "gradient_flow.png", 900)
        photograph_ui(args.tracking_uri, work / "ui.png")
        save_small(work / "ui.png", IMAGES / "ui_sweep.png", 1100)
    print(f"from sweep {parent.data.tags.get('mlflow.runName')} ({parent.info.run_id}); "
          f"gradient flow of {best.data.tags.get('mlflow.runName')}")


if __name__ == "__main__":
    main()
