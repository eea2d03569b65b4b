"""Hydra callbacks a test adds to a sweep, to see what its sweeper sees:

    +hydra.callbacks.returns._target_=hydra_probes.RecordReturns

HarnessCli (fixtures/harness.py) puts this folder on the PYTHONPATH of the commands it
runs; nothing in the harness knows about them.
"""

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback


class RecordReturns(Callback):
    """Append each job's number and return value, the value Hydra's Optuna sweeper tells
    its study for the trial, to returns.jsonl in the sweep folder."""

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        with open(Path(config.hydra.sweep.dir) / "returns.jsonl", "a") as f:
            f.write(json.dumps({"job": int(config.hydra.job.num),
                                "value": job_return.return_value}) + "\n")
