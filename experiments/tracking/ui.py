"""Links into MLflow's UI: an experiment's runs, a run's page, a saved view of its runs.

MLflow 3's UI keeps its state in the URL after `#`: `/#/experiments/<id>/runs` lists an
experiment's runs, `/#/experiments/<id>/runs/<run id>` is a run's page, `/#/compare-runs`
compares runs. MLflow 3.17 opens in its GenAI mode (`/#/experiments/<id>` is an overview
of traces), even for an experiment tagged as model training (tags.EXPERIMENT_KIND); the
query `workflowType=machine_learning` asks for the model-training mode, so every link here
carries it. A sweep's child runs are nested under their parent, collapsed, in the runs
table and its charts (a `searchFilter=` on them still shows only the parent); its parent's
page lists them by name, and its saved view (tracking.views) draws their curves together.
`/#/compare-runs` is not linked: it opens on a parallel-coordinates plot of the first
metric by name and a preview per run, not on the runs' curves.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from experiments.tracking.server import LOOPBACK, TrackingServer
from experiments.tracking.store import resolve_tracking_uri, use_store
from experiments.tracking.views import SHARE_KEY_PARAM, sweep_view_key

DEFAULT_UI_PORT = 5000  # `make ui`'s default PORT
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_address(tracking_uri: str, port: int = DEFAULT_UI_PORT) -> str:
    """Where the UI of a store is: a tracking server serves its own UI; a local store (SQLite,
    PostgreSQL) is shown by `make ui` on the loopback address and `port`."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return f"http://{LOOPBACK}:{port}"


def experiment_link(address: str, experiment_id: str) -> str:
    """The experiment's runs table, in the model-training view."""
    return f"{address}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def run_link(address: str, experiment_id: str, run_id: str) -> str:
    """A run's page: its metrics, parameters, tags, artifacts, and its child runs by name."""
    return f"{address}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


def view_link(address: str, experiment_id: str, view_key: str) -> str:
    """The experiment's runs in a saved view, in chart mode: what the view draws, at once.
    Nothing else in the query, which would override the view's filter and order."""
    return (f"{address}/#/experiments/{experiment_id}/runs?{SHARE_KEY_PARAM}={view_key}"
            f"&compareRunsMode=CHART&{MODEL_TRAINING_VIEW}")


def sweep_links(address: str, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """What a sweep's links open, to the link: its parent run's page, its runs' curves (its
    saved view, tracking.views), the experiment. The sweep prints them when it ends, `make
    ui` again for the latest."""
    return {"the sweep (metrics, child runs)": run_link(address, experiment_id, parent_run_id),
            "its runs' curves": view_link(address, experiment_id, sweep_view_key(parent_run_id)),
            "the experiment": experiment_link(address, experiment_id)}


def link_lines(links: dict[str, str]) -> list[str]:
    """`  <what>: <link>` lines, the links aligned."""
    width = max((len(k) for k in links), default=0)
    return [f"  {what + ':':<{width + 1}} {link}" for what, link in links.items()]


class PortInUseError(RuntimeError):
    """The UI's port is taken, e.g. by a UI started before."""


def _check_port_free(port: int) -> None:
    """Fail with the port's number rather than with the server's exit code: its output,
    which would say why, is not shown."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError as e:
            raise PortInUseError(
                f"port {port} on {LOOPBACK} is in use ({e.strerror}); is a UI already "
                f"running there? Choose another: make ui PORT=5001 "
                f"(python -m experiments.ui --port 5001)") from e


@dataclass
class UiSession:
    """The UI `start_ui` opened: its address, the experiment's link, and the server process
    showing a local store (None when the store is a tracking server, which has its own)."""

    address: str
    experiment_id: str
    link: str
    server: TrackingServer | None


def start_ui(configured: str | None, experiment: str, port: int = DEFAULT_UI_PORT,
             server_log: Path | None = None) -> UiSession:
    """Find (or create, tagged as model training) the experiment in the store and start
    MLflow's UI over a local store on the loopback address and `port`.

    The UI is `mlflow server` with the store's artifacts read in place (what `mlflow ui`
    runs), started and waited for by TrackingServer, so the link printed answers at once.
    """
    uri = resolve_tracking_uri(configured)
    local = not uri.startswith(("http://", "https://"))
    if local:
        _check_port_free(port)
    experiment_id = use_store(configured, experiment)
    server = None
    if local:
        # MLflow's default artifact folder beside the store, for experiments created in the UI.
        server = TrackingServer(uri, Path("mlruns"), port=port, log_path=server_log)
        server.start()
    address = ui_address(uri, port)
    return UiSession(address, experiment_id, experiment_link(address, experiment_id), server)
