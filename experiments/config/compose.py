"""Configs outside a running Hydra app: composed as the command line would, or rebuilt
from a logged run's config, and the schemas put in Hydra's ConfigStore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.config.schemas import (
    TrainConfig,
    data_schemas,
    model_schemas,
    optim_schemas,
    schedule_schemas,
)
from experiments.config.validate import ConfigError, validate


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore: `train_schema`, and `schema/<group>/<name>`
    for every registered model family, optimiser, schedule and dataset (conf/optim/sgd.yaml
    starts from /schema/optim/sgd, conf/model/resnet.yaml from /schema/model/resnet, ...).
    Call before Hydra composes a config.

    Called explicitly (not at import) so that importing this module does no work; storing
    the same node again just replaces it, so calling twice is harmless.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, schemas in (("model", model_schemas()), ("optim", optim_schemas()),
                           ("schedule", schedule_schemas()), ("data", data_schemas())):
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def config_from_container(container: Mapping[str, Any]) -> DictConfig:
    """A typed, validated TrainConfig from a plain nested dict (e.g. a logged config.yaml).

    The model, optimiser, schedule and data schemas are chosen by their `name`, so unknown
    keys and wrong types fail exactly as they would on the command line. A model logged
    before families had knobs ({name: seed}) takes its family's defaults, which build
    the same network.
    """
    data = dict(container)
    model_name = (data.get("model") or {}).get("name", "seed")
    if model_name not in model_schemas():
        raise ConfigError(f"model.name={model_name!r}: choose one of {', '.join(model_schemas())}")
    try:
        optim_schema = optim_schemas()[data["optim"]["name"]]
        schedule_schema = schedule_schemas()[data["schedule"]["name"]]
        data_schema = data_schemas()[data.get("data", {}).get("name", "cifar10")]
    except (KeyError, ValueError) as e:
        raise ConfigError(
            f"the config has no known optim.name / schedule.name / data.name ({e})") from e
    base = OmegaConf.structured(TrainConfig(model=model_schemas()[model_name](),
                                            optim=optim_schema(), schedule=schedule_schema(),
                                            data=data_schema()))
    cfg = OmegaConf.merge(base, data)
    assert isinstance(cfg, DictConfig)
    validate(cfg)
    return cfg


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose the app's config as `python -m experiments.train <overrides>` would.

    For scripts and tests that need a config without running the Hydra app
    (e.g. `build_run(compose_config(["model=vgg"]))`). Not usable inside a running app.
    """
    from hydra import compose, initialize_config_module

    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
