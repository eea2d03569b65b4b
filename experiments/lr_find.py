"""The learning-rate range test of a configured run (Smith 2017; the "LR finder").

    python -m experiments.lr_find                                  # the default config
    python -m experiments.lr_find model=vgg data.n_train=2000 lr_find.steps=300
    make lr-find ARGS="model=resnet optim=adam"

Takes the same overrides as `python -m experiments.train`; trains the configured network
for up to `lr_find.steps` steps while the rate grows from `lr_find.min_lr` to
`lr_find.max_lr`, logs the loss-against-rate figure and the suggestion to an MLflow run of
its own (experiments.runs.lr_find), and prints the suggestion.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.config import register_configs
from experiments.runs.lr_find import find_and_log
from experiments.tracking.signals import stop_scope


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="train")
def _app(cfg: DictConfig) -> None:
    result, run_id = find_and_log(cfg)
    ended = "stopped early as the loss diverged" if result.stopped_early else "ran every step"
    print(f"range test: {len(result.lrs)} steps from {result.lrs[0]:.3g} to "
          f"{result.lrs[-1]:.3g} ({ended}); lowest smoothed loss {result.best_loss:.4g}")
    print(f"suggested learning rate: {result.suggestion:.4g} (rule {result.rule}); "
          f"figure in MLflow run {run_id}, lr_find/lr_range_test.png")
    print(f"train at it: python -m experiments.train optim.lr={result.suggestion:.4g} ..., "
          f"or lr_find.apply=true")


def main() -> None:
    """Entry point of `python -m experiments.lr_find` (and `make lr-find`)."""
    register_configs()
    # A stop signal anywhere in the command, a sweep's jobs in this process included, ends
    # what it stopped (experiments.tracking.signals); on the way out a sweep's parent too.
    with stop_scope():
        _app()


if __name__ == "__main__":
    main()
