"""Configs outside a running Hydra app: composed as the command line would, or rebuilt
from a logged run's config, and the schemas put in Hydra's ConfigStore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cnn.data import OFFICIAL_MD5, OFFICIAL_URL
from experiments.config.schemas import (
    TrainConfig,
    data_schemas,
    init_schemas,
    model_schemas,
    optim_schemas,
    schedule_schemas,
)
from experiments.config.validate import ConfigError, validate


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore: `train_schema`, and `schema/<group>/<name>`
    for every registered model family, initialiser, optimiser, schedule and dataset
    (conf/optim/sgd.yaml
    starts from /schema/optim/sgd, conf/model/resnet.yaml from /schema/model/resnet, ...).
    Call before Hydra composes a config.

    Called explicitly (not at import) so that importing this module does no work; storing
    the same node again just replaces it, so calling twice is harmless.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, schemas in (("model", model_schemas()), ("init", init_schemas()),
                           ("optim", optim_schemas()),
                           ("schedule", schedule_schemas()), ("data", data_schemas())):
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def config_from_container(container: Mapping[str, Any]) -> DictConfig:
    """A typed, validated TrainConfig from a plain nested dict (e.g. a logged config.yaml).

    The model, initialiser, optimiser, schedule and data schemas are chosen by their
    `name`, so unknown keys and wrong types fail exactly as they would on the command line.
    A model logged before families had knobs ({name: seed}) takes its family's defaults,
    which build the same network; keys logged before each initialiser and dataset had a
    schema of its own are dropped where they held the inert value every run then logged.
    """
    data = _without_legacy_keys(container)
    model_name = (data.get("model") or {}).get("name", "seed")
    if model_name not in model_schemas():
        raise ConfigError(f"model.name={model_name!r}: choose one of {', '.join(model_schemas())}")
    try:
        init_schema = init_schemas()[data.get("init", {}).get("name", "he")]
        optim_schema = optim_schemas()[data["optim"]["name"]]
        schedule_schema = schedule_schemas()[data["schedule"]["name"]]
        data_schema = data_schemas()[data.get("data", {}).get("name", "cifar10")]
    except (KeyError, ValueError) as e:
        raise ConfigError(f"the config has no known init.name / optim.name / schedule.name / "
                          f"data.name ({e})") from e
    base = OmegaConf.structured(TrainConfig(model=model_schemas()[model_name](),
                                            init=init_schema(),
                                            optim=optim_schema(), schedule=schedule_schema(),
                                            data=data_schema()))
    cfg = OmegaConf.merge(base, data)
    assert isinstance(cfg, DictConfig)
    validate(cfg)
    return cfg


# (group, key, value) that configs logged before initialisers and datasets had schemas of
# their own carried for every option: `init.std: null` (the std of normal ones, None for
# the rest) and CIFAR-10's download keys, which digits and image folders inherited unused.
_LEGACY_KEYS = (("init", "std", (None,)), ("data", "root", (None,)),
                ("data", "download", (False,)), ("data", "url", (OFFICIAL_URL,)),
                ("data", "md5", (OFFICIAL_MD5,)))


def _without_legacy_keys(container: Mapping[str, Any]) -> dict[str, Any]:
    """The container, without the legacy keys its chosen schemas no longer declare."""
    data = dict(container)
    schemas = {"init": init_schemas(), "data": data_schemas()}
    for group, key, inert in _LEGACY_KEYS:
        node = data.get(group)
        if not isinstance(node, Mapping) or key not in node:
            continue
        schema = schemas[group].get(node.get("name"))
        if schema is not None and key not in {f.name for f in fields(schema)} \
                and node[key] in inert:
            data[group] = {k: v for k, v in node.items() if k != key}
    return data


def compose_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose the app's config as `python -m experiments.train <overrides>` would.

    For scripts and tests that need a config without running the Hydra app
    (e.g. `build_run(compose_config(["model=vgg"]))`). Not usable inside a running app.
    """
    from hydra import compose, initialize_config_module

    register_configs()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))
