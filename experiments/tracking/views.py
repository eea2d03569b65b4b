"""A sweep's saved view in MLflow's UI: its child runs' curves overlaid, one chart a metric.

MLflow 3.17's experiment page saves a named view as an experiment tag
(`mlflow.sharedViewState.<id>`: a JSON envelope {name, createdAt, state}), opens it from
`/#/experiments/<id>/runs?viewStateShareKey=<id>`, and lists it by name in its "Views" menu.
The state holds the runs' search filter and order and the page's UI state: grouping, which
runs the charts draw, and the charts themselves. It cannot expand a parent run (MLflow
drops `runsExpanded` from a shared view), and a filter that matches only the children
still nests them, collapsed, under their parent, which MLflow fetches for them; so the view
groups the children by their seed group (tags.SEED_GROUP), which lists them flat, each
group expanded, and draws every run of a group rather than the group's mean (the "Group
by" menu's "use grouping in charts" switch shows the means with their ranges).

The charts: the main curves first, in MAIN_CHARTS' order; MLflow appends every other
metric after them (the section is marked reordered, so it does not sort them in).
"""

from __future__ import annotations

import json
import time
from typing import Any

from experiments.tracking import tags

SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
SHARE_KEY_PARAM = "viewStateShareKey"
MODEL_METRICS_SECTION = "Model metrics"  # MLflow's name for metrics with no "prefix/"
SYSTEM_METRICS_SECTION = "System metrics"
# Curves over epochs (LINE), then single final values (BAR).
MAIN_CHARTS = (("val_acc", "LINE"), ("train_loss", "LINE"), ("val_loss", "LINE"),
               ("train_acc", "LINE"), ("test_acc", "BAR"), ("test_loss", "BAR"), ("lr", "LINE"))


def sweep_view_key(parent_run_id: str) -> str:
    """The view's id: one per sweep, so that the sweep and `make ui` name the same view."""
    return f"sweep-{parent_run_id}"


def _chart(metric: str, kind: str, section: str) -> dict[str, Any]:
    chart: dict[str, Any] = {
        "uuid": f"sweep-{metric}", "type": kind, "metricKey": metric, "metricSectionId": section,
        "deleted": False, "isGenerated": True, "runsCountToCompare": 10000}
    if kind == "LINE":
        chart |= {"selectedMetricKeys": [metric], "xAxisKey": "step", "scaleType": "linear",
                  "xAxisScaleType": "linear", "lineSmoothness": 0, "selectedXAxisMetricKey": "",
                  "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True,
                  "yAxisKey": "metric", "yAxisExpressions": [], "range": {}}
    return chart


def sweep_view_state(parent_run_id: str, group_tag: str = tags.SEED_GROUP) -> dict[str, Any]:
    """The view's state: the sweep's child runs, oldest first (the report's order), grouped
    by the tag `group_tag`, every one of them drawn, under the main charts."""
    main, system = "sweep-model-metrics", "sweep-system-metrics"
    return {
        "searchFilter": f"tags.{tags.PARENT} = '{parent_run_id}'",
        "orderByKey": "attributes.start_time", "orderByAsc": True,
        "groupBy": {"aggregateFunction": "average",
                    "groupByKeys": [{"mode": "tag", "groupByData": group_tag}]},
        "useGroupedValuesInCharts": False, "groupsExpanded": {},
        "runsHiddenMode": "SHOW_ALL",  # MLflow's default draws the first 10 runs only
        "hideEmptyCharts": True, "isAccordionReordered": False,
        "compareRunSections": [
            {"uuid": main, "name": MODEL_METRICS_SECTION, "display": True, "isReordered": True,
             "deleted": False, "isGenerated": True},
            {"uuid": system, "name": SYSTEM_METRICS_SECTION, "display": True,
             "isReordered": False, "deleted": False, "isGenerated": True}],
        "compareRunCharts": [_chart(metric, kind, main) for metric, kind in MAIN_CHARTS],
    }


def save_sweep_view(client: Any, experiment_id: str, parent_run_id: str, name: str,
                    group_tag: str = tags.SEED_GROUP) -> str:
    """Save (or replace) the sweep's view in its experiment; returns the view's id."""
    key = sweep_view_key(parent_run_id)
    envelope = {"name": name, "createdAt": int(time.time() * 1000),
                "state": json.dumps(sweep_view_state(parent_run_id, group_tag))}
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG_PREFIX + key, json.dumps(envelope))
    return key


def has_sweep_view(experiment_tags: dict[str, str], parent_run_id: str) -> bool:
    return SHARED_VIEW_TAG_PREFIX + sweep_view_key(parent_run_id) in experiment_tags
