"""Run a logged run again from its own config and compare the two.

    python -m experiments.rerun <run_id>          # or: make rerun RUN_ID=<run_id>

Warns when the code or the data differ from the run's, trains a new run tagged
rerun_of=<run_id>, and prints both runs' final metrics side by side with whether each
per-epoch series is identical (experiments.runs.rerun says why they should be).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from experiments.runs.rerun import RerunError, format_comparison, rerun
from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.store import StoreError


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.rerun` (and `make rerun`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the MLflow run to reproduce")
    add_tracking_uri_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    try:
        new_id, comparisons = rerun(args.run_id, args.tracking_uri)
    except (RerunError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"\nrerun of {args.run_id}: new run {new_id}")
    print(format_comparison(comparisons, args.run_id, new_id))
    if not all(c.identical for c in comparisons):
        print("\nsome series differ; see the warnings above for why", file=sys.stderr)


if __name__ == "__main__":
    main()
