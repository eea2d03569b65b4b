"""MLflow's UI on this project's store, opened on the project's experiment.

    python -m experiments.ui                       # or: make ui; http://127.0.0.1:5000
    python -m experiments.ui --port 5001 --experiment benchmarks

Prints the link that opens the experiment's runs (creating the experiment if the store
has none yet) and the latest sweep's links, on this port, then serves the UI on the
loopback address until Ctrl-C. Against a tracking server (`--tracking-uri http://...`) it
only prints the links on that server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.sweeps.parent import latest_sweep_links
from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.ui import DEFAULT_UI_PORT, PortInUseError, link_lines, start_ui


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.ui` (and `make ui`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_UI_PORT)
    parser.add_argument("--experiment", default="cifar10-cnn")
    add_tracking_uri_argument(parser)
    args = parser.parse_args(argv)
    try:
        ui = start_ui(args.tracking_uri, args.experiment, args.port)
    except PortInUseError as e:
        sys.exit(str(e))
    print(f"MLflow UI at {ui.address}; experiment {args.experiment!r} (id {ui.experiment_id}):",
          flush=True)
    print(f"  {ui.link}", flush=True)
    # A sweep printed its links for port 5000; here they are on this UI's port.
    sweep = latest_sweep_links(args.experiment, ui.address)
    if sweep is not None:
        name, links = sweep
        print(f"The latest sweep, {name}:", *link_lines(links), sep="\n", flush=True)
    if ui.server is not None:
        print("Ctrl-C stops it.", flush=True)
        ui.server.serve_until_interrupted()


if __name__ == "__main__":
    main()
