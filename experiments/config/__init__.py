"""Configuration: typed schemas for every group (schemas), the checks types cannot
express (validate), and configs composed or rebuilt outside a Hydra app (compose).

    from experiments.config import compose_config, validate
    cfg = compose_config(["model=vgg", "optim.lr=0.05"])
"""

from experiments.config.compose import compose_config, config_from_container, register_configs
from experiments.config.schemas import TrainConfig
from experiments.config.validate import ConfigError, validate

__all__ = [
    "ConfigError",
    "TrainConfig",
    "compose_config",
    "config_from_container",
    "register_configs",
    "validate",
]
