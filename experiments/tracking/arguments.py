"""The command-line option of every command that reads or writes runs. Imports nothing
heavy, so a command can parse its arguments before it loads MLflow."""

from __future__ import annotations

import argparse


def add_tracking_uri_argument(parser: argparse.ArgumentParser) -> None:
    """The --tracking-uri option every command that reads or writes runs takes."""
    parser.add_argument("--tracking-uri", default=None,
                        help="the MLflow store (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the working directory)")
