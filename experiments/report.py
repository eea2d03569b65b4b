"""Compare the runs of a sweep: learning curves and final accuracy against training-set size.

    python -m experiments.report                      # the latest sweep in the store
    python -m experiments.report --parent <run_id>    # a given sweep's parent run
    python -m experiments.report --out reports/x --no-log

Writes into --out (default reports/<parent_run_id>/), and logs to the parent run under
report/ unless --no-log (experiments.reporting.summary lists what it holds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.reporting.summary import EmptySweepError, write_report
from experiments.sweeps.parent import NoSweepError, latest_sweep
from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.disk import DiskFullError
from experiments.tracking.store import StoreError, connect, run_exists


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.report` (and `make report`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", help="the sweep's parent run id (default: the latest)")
    parser.add_argument("--experiment", default="cifar10-cnn")
    add_tracking_uri_argument(parser)
    parser.add_argument("--out", default=None, help="default: reports/<parent run id>")
    parser.add_argument("--no-log", action="store_true", help="do not log to the parent run")
    args = parser.parse_args(argv)
    try:
        uri = connect(args.tracking_uri)
    except StoreError as e:
        sys.exit(f"error: {e}")
    try:
        parent = args.parent or latest_sweep(args.experiment)
    except NoSweepError as e:
        sys.exit(str(e))
    if args.parent and not run_exists(parent):
        sys.exit(f"error: no run {parent} in {uri} (--parent takes a sweep's "
                 "parent run id)")
    out = Path(args.out or Path("reports") / parent)
    try:
        report = write_report(parent, out, log_to_parent=not args.no_log)
    except (EmptySweepError, DiskFullError) as e:
        sys.exit(f"error: {e}")
    print(f"sweep {parent}: {report.summary}")
    print((out / "summary.md").read_text())
    print(f"figures and tables in {out}/")


if __name__ == "__main__":
    main()
