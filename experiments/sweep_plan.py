"""How `make sweep-parallel` launches a sweep: in parallel, or one job after the other
when parallel jobs would be slower on this machine (experiments.sweeps.plan).

    python -m experiments.sweep_plan --jobs 2 sweep=convergence trainer.epochs=5

prints the launcher overrides for `python -m experiments.train` on stdout (none when
declined) and, when it declines, a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys

from experiments.sweeps.plan import parallel_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers asked for")
    parser.add_argument("overrides", nargs="*", help="the sweep's overrides, as for train")
    args = parser.parse_args(argv)
    launcher, reason = parallel_plan(args.overrides, args.jobs)
    if reason:
        print(f"sweep-parallel: {reason}", file=sys.stderr)
    print(" ".join(launcher))
    return 0


if __name__ == "__main__":
    sys.exit(main())
