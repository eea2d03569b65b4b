"""Health checks of a configured run, before any training: why would it fail?

    python -m experiments.diagnose experiment=seed_subset
    python -m experiments.diagnose init=unit_normal optim.lr=0.5
    make diagnose ARGS="model=vgg init=normal"

Takes the same overrides as `python -m experiments.train`, builds the same network and
data, and prints the health report every training run logs first (experiments.runs.health),
headed by what it diagnosed: the model and its knobs, the initialiser, the optimiser and
its keys, the batch size and the data size. It also writes it to the command's Hydra
folder (outputs/diagnose/<time>/health_report.txt).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import register_configs
from experiments.runs.build import build_run
from experiments.runs.health import diagnose, full_report, layer_table
from experiments.runtime.allocator import keep_freed_memory
from experiments.runtime.threads import chunk_threads
from experiments.tracking.signals import stop_scope


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _app(cfg: DictConfig) -> None:
    keep_freed_memory()
    with chunk_threads():  # on the cores, as a training run's checks are
        diagnosis = diagnose(build_run(cfg))
    print(diagnosis.subject, layer_table(diagnosis.stats), diagnosis.report, sep="\n\n")
    # Beside Hydra's log and config of this command, as a training run logs it.
    report = Path(HydraConfig.get().runtime.output_dir) / "health_report.txt"
    report.write_text(full_report(diagnosis))
    print(f"\n(also in {report})")


def main() -> None:
    """Entry point of `python -m experiments.diagnose` (and `make diagnose`)."""
    register_configs()
    # A stop signal anywhere in the command, a sweep's jobs in this process included, ends
    # what it stopped (experiments.tracking.signals); on the way out a sweep's parent too.
    with stop_scope():
        _app()


if __name__ == "__main__":
    main()
