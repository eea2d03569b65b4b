"""Checks beyond types: names, ranges, and keys that got past the schemas.

Each registered definition is asked rather than its rules repeated here: the model
family checks its knobs (`cnn.models.check_model`, which builds nothing and names the
knob), the initialiser, optimiser and schedule are made once from the config, and each
dataset lists its own problems. Everything is checked before an MLflow run is created.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from cnn.initializers import get_initializer
from cnn.lr_range import RULES
from cnn.models import ARCHITECTURES, KnobError, check_model, model_memory_problem
from cnn.optim import make_optimizer
from cnn.schedules import make_schedule
from experiments.config.schemas import (
    InitConfig,
    data_schemas,
    init_schemas,
    model_schemas,
    optim_schemas,
    schedule_schemas,
)
from experiments.datasets.base import data_config


class ConfigError(ValueError):
    """A config value has the right type but is not allowed (unknown name, out of range)."""


def group_args(node: Any, *skip: str) -> dict[str, Any]:
    """A group's keys and values as keyword arguments: everything but `name` and `skip`."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return {k: v for k, v in values.items() if k not in ("name", *skip)}


def init_args(node: Any) -> dict[str, Any]:
    """The initialiser's knobs (std, gain, ...) from the `init` node, as keyword arguments:
    its keys but the ones every initialiser's schema shares, which the run applies itself."""
    return group_args(node, *(f.name for f in fields(InitConfig)))


def validate(cfg: Any) -> None:
    """Raise ConfigError naming every key whose value the run cannot use."""
    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    problems += unknown_keys(cfg)
    check(cfg.model.name in ARCHITECTURES,
          f"model.name={cfg.model.name!r}: choose one of {', '.join(ARCHITECTURES)}")
    if cfg.model.name in ARCHITECTURES:
        _check_schema_matches(cfg, "model", model_schemas(), check)
    groups = {"init": init_schemas(), "optim": optim_schemas(), "schedule": schedule_schemas(),
              "data": data_schemas()}
    for group, schemas in groups.items():
        name = cfg[group].name
        check(name in schemas, f"{group}.name={name!r}: choose one of {', '.join(schemas)}")
        _check_schema_matches(cfg, group, schemas, check)
    if not problems:
        data = data_config(cfg.data)
        _check_init(cfg.init, check)
        _check_model(cfg, data.image_shape, check)
        _check_optim_and_schedule(cfg, check)
        problems += data.problems()
        check(cfg.trainer.test_translate < data.image_side,
              f"trainer.test_translate={cfg.trainer.test_translate} must be smaller than the "
              f"{data.image_side}x{data.image_side} images")
    _check_trainer(cfg.trainer, check)
    _check_lr_find(cfg.lr_find, check)
    check(cfg.search.seeds >= 1,
          f"search.seeds must be >= 1 (the seeds each search trial trains), got "
          f"{cfg.search.seeds}")
    for key, spec in cfg.callbacks.items():
        check(isinstance(spec, Mapping) and "_target_" in spec,
              f"callbacks.{key} needs a _target_ (the callback's class), got {spec}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_lr_find(lr_find: Any, check) -> None:
    check(0 < lr_find.min_lr < math.inf, f"lr_find.min_lr must be > 0 and finite, got "
                                         f"{lr_find.min_lr}")
    check(lr_find.min_lr < lr_find.max_lr < math.inf,
          f"lr_find.max_lr={lr_find.max_lr} must be finite and above "
          f"lr_find.min_lr={lr_find.min_lr}")
    check(lr_find.steps >= 2, f"lr_find.steps must be at least 2, got {lr_find.steps}")
    check(lr_find.rule in RULES,
          f"lr_find.rule={lr_find.rule!r}: choose one of {', '.join(RULES)}")
    check(0 <= lr_find.beta < 1, f"lr_find.beta must be in [0, 1), got {lr_find.beta}")
    check(lr_find.diverge_factor > 1,
          f"lr_find.diverge_factor must be > 1, got {lr_find.diverge_factor}")


def _check_init(init: Any, check) -> None:
    """Ask the initialiser about its knobs' values: one draw of a 1x1 weight, from a
    generator of its own, so that none of the run's streams moves."""
    try:
        get_initializer(init.name, **init_args(init))((1, 1), 1, 1, np.random.default_rng(0))
    except (TypeError, ValueError) as e:
        check(False, f"init ({init.name}): {e}")


def _check_model(cfg: Any, input_shape: tuple[int, int, int], check) -> None:
    """The family's knobs against its signature and its own rules, on the data's image
    shape, building nothing; the family names the knob it refuses. Then its memory in
    the run's batches, estimated from the knobs, against the machine's."""
    model = cfg.model
    knobs = group_args(model)

    def where(knob: str) -> str:
        # A list of layer specs is too long to repeat; the family's message says which one.
        return f"model.{knob}" if knob == "layers" else f"model.{knob}={knobs.get(knob)}"

    try:
        check_model(model.name, input_shape, **knobs)
    except KnobError as e:
        check(False, f"{where(e.knob)}: {e}")
        return
    dtype = cfg.trainer.dtype if cfg.trainer.dtype in ("float32", "float64") else "float32"
    too_big = model_memory_problem(model.name, input_shape, knobs,
                                   batch_size=max(cfg.trainer.batch_size, 1),  # checked below
                                   itemsize=np.dtype(dtype).itemsize)
    if too_big is not None:
        check(False, f"{where(too_big[0])}: {too_big[1]}")


def _check_optim_and_schedule(cfg: Any, check) -> None:
    optim = cfg.optim
    if not (math.isfinite(optim.lr) and optim.lr > 0):
        check(False, f"optim.lr must be > 0 and finite, got {optim.lr}")
        return
    try:
        optimizer = make_optimizer(optim.name, **group_args(optim))
    except (TypeError, ValueError) as e:
        check(False, f"optim ({optim.name}): {e}")
        return
    schedule = cfg.schedule
    check(schedule.warmup_epochs >= 0,
          f"schedule.warmup_epochs must be >= 0, got {schedule.warmup_epochs}")
    try:
        built = make_schedule(schedule.name, optim.lr, max(cfg.trainer.epochs, 1) * 10,
                              steps_per_epoch=10, **group_args(schedule, "warmup_epochs"))
    except (TypeError, ValueError) as e:
        check(False, f"schedule ({schedule.name}): {e}")
        return
    check(built.momentum(0) is None or hasattr(optimizer, "momentum"),
          f"schedule.momentum_range needs an optimiser with momentum, not {optim.name}")


def _check_trainer(trainer: Any, check) -> None:
    # NumPy's generators take seeds in [0, 2**128); its own error names no key.
    check(0 <= trainer.seed < 2**128, f"trainer.seed must be >= 0, got {trainer.seed}")
    check(trainer.epochs >= 1, f"trainer.epochs must be >= 1, got {trainer.epochs}")
    check(trainer.batch_size >= 1, f"trainer.batch_size must be >= 1, got {trainer.batch_size}")
    check(trainer.eval_batch_size >= 1,
          f"trainer.eval_batch_size must be >= 1, got {trainer.eval_batch_size}")
    check(0 <= trainer.label_smoothing < 1,
          f"trainer.label_smoothing must be in [0, 1), got {trainer.label_smoothing}")
    check(0 <= trainer.weight_average < 1,
          f"trainer.weight_average must be in [0, 1) (0: no average), got "
          f"{trainer.weight_average}")
    check(trainer.test_translate >= 0,
          f"trainer.test_translate must be >= 0 (0: no shifted views), got "
          f"{trainer.test_translate}")
    check(trainer.dtype in ("float32", "float64"),
          f"trainer.dtype={trainer.dtype!r}: choose float32 or float64")
    check(trainer.checkpoint_every >= 0,
          f"trainer.checkpoint_every must be >= 0 (0: never), got {trainer.checkpoint_every}")
    check(trainer.interpolation_points >= 2,
          f"trainer.interpolation_points must be >= 2, got {trainer.interpolation_points}")
    check(trainer.interpolation_margin >= 0,
          f"trainer.interpolation_margin must be >= 0, got {trainer.interpolation_margin}")
    check(trainer.interpolation_images >= 1,
          f"trainer.interpolation_images must be >= 1, got {trainer.interpolation_images}")
    check(trainer.interpolation_bn in ("blend", "recompute"),
          f"trainer.interpolation_bn={trainer.interpolation_bn!r}: choose blend or recompute")
    check(trainer.landscape_points >= 2,
          f"trainer.landscape_points must be >= 2, got {trainer.landscape_points}")
    check(0 < trainer.landscape_span < math.inf,
          f"trainer.landscape_span must be > 0 and finite, got {trainer.landscape_span}")
    check(trainer.landscape_images >= 1,
          f"trainer.landscape_images must be >= 1, got {trainer.landscape_images}")
    check(0 <= trainer.landscape_seed < 2**128,
          f"trainer.landscape_seed must be >= 0, got {trainer.landscape_seed}")
    check(trainer.sharpness_every >= 0,
          f"trainer.sharpness_every must be >= 0 (0: off), got {trainer.sharpness_every}")
    check(trainer.sharpness_images >= 1,
          f"trainer.sharpness_images must be >= 1, got {trainer.sharpness_images}")


def _check_schema_matches(cfg: Any, group: str, schemas: Mapping[str, type], check) -> None:
    # `optim.name=adam` on top of the sgd schema would build Adam from SGD's keys. Compared
    # by name: a parallel launcher's worker unpickles its own copy of a generated schema.
    node = cfg[group]
    if isinstance(node, DictConfig) and node.name in schemas:
        check(getattr(OmegaConf.get_type(node), "__name__", None) == schemas[node.name].__name__,
              f"{group}.name={node.name!r} does not match the chosen {group} config; "
              f"choose it with `{group}={node.name}` instead")


def unknown_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Keys of typed nodes that their schema does not declare.

    Hydra's `+key=value` adds a key even to a typed node; a run would then log it as a
    param and silently ignore it, so every such key is reported with the keys allowed.
    """
    if not isinstance(cfg, DictConfig):
        return []
    schema = OmegaConf.get_type(cfg)
    found = []
    if schema is not None and is_dataclass(schema):
        declared = {f.name for f in fields(schema)}
        for key in cfg.keys():
            if key not in declared:
                found.append(f"{prefix}{key}: unknown key; {prefix.rstrip('.') or 'the config'} "
                             f"takes {', '.join(sorted(declared))}")
    for key in cfg.keys():
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            found += unknown_keys(node, f"{prefix}{key}.")
    return found
