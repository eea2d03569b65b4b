"""Serve an MLflow store to other processes or machines until Ctrl-C.

    python -m experiments.server                      # serve ./mlflow.db, ./mlruns on a free port
    python -m experiments.server --port 5001 --backend-store-uri postgresql://user@host/db
    make server HOST=0.0.0.0 PORT=5000 BACKEND=postgresql+psycopg2://...
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from experiments.tracking.server import (
    LOOPBACK,
    TrackingServer,
    exposure_warning,
    reachable_uri,
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m experiments.server` (and `make server`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend-store-uri", default="sqlite:///" + os.path.abspath("mlflow.db"))
    parser.add_argument("--artifact-root", default="mlruns")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--serve-artifacts", action="store_true",
                        help="proxy artifacts (for clients on other machines)")
    parser.add_argument("--allowed-hosts", default=None,
                        help="Host headers to accept, e.g. mlflow.example.org:5000")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = TrackingServer(args.backend_store_uri, args.artifact_root, host=args.host,
                            port=args.port, workers=args.workers,
                            serve_artifacts=args.serve_artifacts,
                            allowed_hosts=args.allowed_hosts)
    server.start()
    warning = exposure_warning(args.host, server.port)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    print(f"MLFLOW_TRACKING_URI={reachable_uri(args.host, server.port)}", flush=True)
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()
