"""Continue a KILLED or FAILED run from its last checkpoint, in the same MLflow run.

    python -m experiments.resume <run_id>          # or: make resume RUN_ID=<run_id>
    python -m experiments.resume <run_id> --force  # a run still marked RUNNING

See experiments.runs.resume for what is restored and why the metrics then equal an
uninterrupted run's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cnn.checkpoint import CheckpointError
from experiments.runs.checkpoints import ResumeError
from experiments.runs.resume import resume
from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.lifecycle import http_retries_bounded
from experiments.tracking.store import StoreError


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.resume` (and `make resume`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the KILLED or FAILED MLflow run to continue")
    add_tracking_uri_argument(parser)
    parser.add_argument("--force", action="store_true",
                        help="resume even a run still marked RUNNING (make sure it is dead)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    http_retries_bounded()
    try:
        outcome = resume(args.run_id, args.tracking_uri, force=args.force)
    except (ResumeError, CheckpointError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"run {outcome.run_id} resumed and finished: test_acc {outcome.test_acc:.4f}")


if __name__ == "__main__":
    main()
