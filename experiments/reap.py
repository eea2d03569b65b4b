"""Mark runs left RUNNING by a crashed process as KILLED.

    python -m experiments.reap                     # or: make reap
    python -m experiments.reap --older-than 12     # also RUNNING runs idle for 12 hours
    python -m experiments.reap --untagged          # also RUNNING runs with no host/pid tag
    python -m experiments.reap --dry-run           # only print what would be marked

See experiments.tracking.reap for how a dead run is told from a live one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.tracking.arguments import add_tracking_uri_argument
from experiments.tracking.reap import reap


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m experiments.reap` (and `make reap`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--older-than", type=float, default=None, metavar="HOURS",
                        help="also mark RUNNING runs with no activity for this many hours")
    parser.add_argument("--untagged", action="store_true",
                        help="also mark RUNNING runs with no host or pid tag (none can be "
                             "checked; made by older code or by hand)")
    parser.add_argument("--dry-run", action="store_true", help="print, change nothing")
    add_tracking_uri_argument(parser)
    args = parser.parse_args(argv)
    if args.older_than is not None and args.older_than < 0:
        parser.error("--older-than must be >= 0")
    reaped, unchecked = reap(args.tracking_uri, args.older_than, args.dry_run, args.untagged)
    verb = "would mark" if args.dry_run else "marked"
    for r in reaped:
        print(f"{verb} KILLED: {r.run_id} {r.name!r} in {r.experiment!r} ({r.reason})")
    print(f"{len(reaped)} stale run(s) {verb} KILLED" if reaped else "no stale RUNNING runs",
          file=sys.stderr)
    if unchecked:
        print(f"{len(unchecked)} RUNNING run(s) carry no host or pid tag, so whether their "
              "process lives cannot be checked; --older-than HOURS marks those idle that "
              "long, --untagged marks them all:", file=sys.stderr)
        for r in unchecked:
            print(f"  {r.run_id} {r.name!r} in {r.experiment!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
