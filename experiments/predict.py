"""Classify image files with a logged model: the top-k classes and probabilities of each.

    python -m experiments.predict runs:/<run id>/model cat.png dog.jpg
    python -m experiments.predict models:/<model id> digit.png --top-k 3

MODEL_URI is any URI MLflow loads a model from; `runs:/` and `models:/` URIs are looked
up in $MLFLOW_TRACKING_URI, else ./mlflow.db, as training writes them (or --tracking-uri).
Each image is read as for training on an image folder: any size and colour mode,
resized to the model's input (experiments.serving.predict).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cnn
from experiments.tracking.arguments import add_tracking_uri_argument


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.predict",
        description="Print the top-k classes, with probabilities, of each image file.")
    parser.add_argument("model_uri", metavar="MODEL_URI",
                        help="a logged model, e.g. runs:/<run id>/model or models:/<model id>")
    parser.add_argument("images", metavar="IMAGE", nargs="+", type=Path,
                        help="image files (PNG, JPEG, ...)")
    parser.add_argument("-k", "--top-k", type=int, default=3,
                        help="how many classes to print per image (default 3)")
    add_tracking_uri_argument(parser)  # where runs:/ and models:/ URIs are looked up
    parser.add_argument("--version", action="version",
                        version=f"numpy-cnn-lab {cnn.__version__}")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be >= 1, got {args.top_k}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m experiments.predict`; returns the exit status."""
    args = parse_args(argv)
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        print(f"predict: no such image file: {', '.join(missing)}", file=sys.stderr)
        return 2

    # MLflow's download bars would be mixed into the predictions on the terminal.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Imported after the arguments are checked: MLflow takes seconds to import.
    from cnn.data.errors import CorruptDatasetError
    from experiments.serving.predict import ModelLoadError, predict_uri
    from experiments.tracking.store import connect

    connect(args.tracking_uri)
    with stop_signals() as received:
        try:
            reports = predict_uri(args.model_uri, args.images, args.top_k)
        except (ModelLoadError, CorruptDatasetError, ValueError) as e:
            if not received:
                print(f"predict: {e}", file=sys.stderr)
                return 1
        except KeyboardInterrupt:
            if not received:  # raised by hand, not by a signal
                raise
    if received:
        die_of(received[0])
    print("\n".join(reports))
    return 0


@contextmanager
def stop_signals() -> Iterator[list[int]]:
    """While open, the first of SIGINT, SIGTERM and SIGHUP raises KeyboardInterrupt, so
    that the model's temporary folder is removed on the way out; later ones only wait,
    so as not to cut that short. Yields the signals received: one raised inside a
    finaliser is printed by Python as ignored, and predicting goes on, but it is still
    there to say the command was stopped. Signals ignored on entry (nohup) stay so."""
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handle) for s in stops
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def die_of(signum: int) -> None:
    """End the process by `signum`, as it would have without a handler, so that a shell
    sees it stopped (status 128 + signum) and stops its script too."""
    print(f"predict: stopped by {signal.Signals(signum).name}", file=sys.stderr)
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    sys.exit(128 + signum)  # if the signal was blocked


if __name__ == "__main__":
    sys.exit(main())
