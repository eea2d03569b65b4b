"""Results tables rebuilt from logged sweeps, with their intervals and provenance.

    python -m experiments.results --parent <run_id> [--parent <run_id> ...] [--target 0.8]

Prints a markdown row per seed group of each sweep (experiments.reporting.results): every
seed's test accuracy, the mean ± its 95% interval, whether it is distinguishable from
--target, and the parent run, commit, date, CPU and BLAS kernel the numbers come from;
then each later sweep's best group against the first's, paired by seed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mlflow.exceptions import MlflowException

from experiments.reporting.results import comparisons, result_rows, results_table
from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.store import connect


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.results` (and `make results`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", action="append", required=True,
                        help="a sweep's parent run id; repeat for more rows")
    parser.add_argument("--target", type=float, default=None,
                        help="a test accuracy (0-1) each row's mean is tested against")
    add_tracking_uri_argument(parser)
    args = parser.parse_args(argv)
    if args.target is not None and not 0.0 < args.target < 1.0:
        parser.error(f"--target must lie between 0 and 1, not {args.target}")
    connect(args.tracking_uri)
    try:
        rows = result_rows(args.parent)
    except MlflowException as e:
        sys.exit(f"no such sweep in the store: {e.message.splitlines()[0]}")
    print(results_table(rows, args.target))
    for line in comparisons(rows):
        print(f"- {line}.")


if __name__ == "__main__":
    main()
