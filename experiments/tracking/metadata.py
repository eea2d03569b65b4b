"""Metadata of a run (its datasets, tags) logged so that a failed call never fails the
training: the call is retried, then given up with a warning.

Several jobs of a parallel sweep log the same test set at the same moment. The store
checks whether the dataset exists, then inserts it; the jobs that lose that race get
`UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest`.
Tried again, the call finds the dataset the winner inserted and only links it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from experiments.tracking.offline import is_tracking_outage

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_S = 0.2  # the other writer's insert has committed well within this


def log_safely(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """`call(*args, **kwargs)`, tried up to ATTEMPTS times; False (and a warning naming
    `what`) if it never succeeded. An unreachable tracking server is not retried here:
    MLflow's client has already retried, and the run's own outage handling takes over."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            call(*args, **kwargs)
            return True
        except Exception as e:
            if attempt == ATTEMPTS or is_tracking_outage(e):
                log.warning("could not log %s (%s); training goes on without it", what,
                            str(e).splitlines()[0] if str(e) else type(e).__name__)
                return False
            log.info("logging %s failed (%s); trying again", what, e)
            time.sleep(BACKOFF_S * attempt)
    return False
