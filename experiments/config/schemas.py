"""Typed schemas for every config group, registered in Hydra's ConfigStore.

The YAML files in `conf/` choose values; the dataclasses here say which keys exist and
what type each one has. Hydra merges every YAML file into its schema, so a mistyped key
(`optim.lrr=0.1`) or a wrong type (`trainer.epochs=ten`) fails before anything runs,
with the full key in the message. The schemas' defaults mirror the defaults of the
`cnn` functions they feed, so a YAML file states only what it changes.

Optimisers and schedules take different arguments, so each has its own schema (a
subclass of `OptimConfig` / `ScheduleConfig`), stored as `schema/optim/<name>` and
`schema/schedule/<name>`; `conf/optim/sgd.yaml` starts from `/schema/optim/sgd`, and so on.
Datasets likewise: `DataConfig` is CIFAR-10's and holds the keys all share; image folders
and digits add theirs in subclasses stored as `schema/data/<name>`.

`validate` adds the checks a type cannot express (names, ranges), and
`config_from_container` rebuilds a validated config from a plain dict, such as the
resolved config logged with a run (used by `experiments.rerun`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

# -- model and initialisation ---------------------------------------------------------------


@dataclass
class ModelConfig:
    name: str = "seed"  # an architecture in cnn.models.ARCHITECTURES: seed, vgg


@dataclass
class InitConfig:
    name: str = "he"  # an initialiser in cnn.initializers.NAMES
    std: float | None = None  # for normal / unit_normal; None keeps 0.01 / 1.0


# -- optimisers: one schema per optimiser, since their arguments differ ---------------------


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 0.01  # the base rate; for onecycle, the peak rate
    weight_decay: float = 0.0  # L2 penalty added to the gradient (decoupled for adamw)


@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False


@dataclass
class AdamConfig(OptimConfig):
    name: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 1e-2


@dataclass
class RMSpropConfig(OptimConfig):
    name: str = "rmsprop"
    lr: float = 1e-3
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0


OPTIM_SCHEMAS: dict[str, type[OptimConfig]] = {
    "sgd": SGDConfig,
    "adam": AdamConfig,
    "adamw": AdamWConfig,
    "rmsprop": RMSpropConfig,
}

# -- learning-rate schedules (their rate comes from optim.lr) -------------------------------


@dataclass
class ScheduleConfig:
    name: str = MISSING
    # Linear warm-up in front of the schedule, in epochs (fractions allowed); epochs rather
    # than steps so that a preset keeps its meaning when the batch size or n_train changes.
    warmup_epochs: float = 0.0


@dataclass
class ConstantScheduleConfig(ScheduleConfig):
    name: str = "constant"


@dataclass
class StepScheduleConfig(ScheduleConfig):
    name: str = "step"
    step_epochs: int = 10  # multiply the rate by gamma every step_epochs epochs
    gamma: float = 0.1


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    name: str = "cosine"
    min_lr: float = 0.0


@dataclass
class OneCycleScheduleConfig(ScheduleConfig):
    name: str = "onecycle"
    pct_start: float = 0.25  # fraction of the steps spent rising to the peak rate
    div_factor: float = 25.0  # start at lr / div_factor
    final_div_factor: float = 1e4  # end at lr / (div_factor * final_div_factor)
    # [low, high]: cycle the momentum against the rate (high -> low at the peak -> high);
    # None keeps the optimiser's own momentum. Only optimisers with momentum use it.
    momentum_range: list[float] | None = None


SCHEDULE_SCHEMAS: dict[str, type[ScheduleConfig]] = {
    "constant": ConstantScheduleConfig,
    "step": StepScheduleConfig,
    "cosine": CosineScheduleConfig,
    "onecycle": OneCycleScheduleConfig,
}

# -- data, training loop, tracking ----------------------------------------------------------


@dataclass
class AugmentConfig:
    crop_pad: int = 0  # pad by this many pixels, then crop back at a random offset; 0: off
    pad_mode: str = "reflect"  # reflect | zero
    flip: bool = False  # random horizontal flip


@dataclass
class DataConfig:
    """CIFAR-10's schema, and the keys every dataset shares (the others subclass it)."""

    name: str = "cifar10"  # cifar10 | image_folder | digits (chosen with data=<name>)
    root: str | None = None  # None: $CIFAR10_ROOT, else ./data
    download: bool = False  # fetch the official archive if nothing is under root
    n_train: int | None = None  # training images (stratified); None: all that remain
    n_val: int = 0  # validation images carved from the training set first; 0: none
    classes: list[int] | None = None  # labels to keep, e.g. [3, 5]; None: all ten
    split_seed: int | None = None  # None: drawn from trainer.seed's "split" stream
    normalize: bool = True  # per-channel standardisation fitted on training images; off: x/255
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ImageFolderDataConfig(DataConfig):
    """root/<class>/<image>, or root/train/<class>/... and root/test/<class>/..."""

    name: str = "image_folder"
    image_size: int = 32  # every image is resized to image_size x image_size RGB
    test_fraction: float = 0.2  # held out per class when root has no train/ and test/


@dataclass
class DigitsDataConfig(DataConfig):
    """scikit-learn's 8x8 digits (no download), scaled up to image_size x image_size RGB."""

    name: str = "digits"
    image_size: int = 32
    test_fraction: float = 0.2  # held out per class, the same images whatever the seed


DATA_SCHEMAS: dict[str, type[DataConfig]] = {
    "cifar10": DataConfig,
    "image_folder": ImageFolderDataConfig,
    "digits": DigitsDataConfig,
}


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 500  # batch size for validation and test passes
    seed: int = 0  # fixes every random stream of the run (cnn.rng.make_generators)
    label_smoothing: float = 0.0
    dtype: str = "float32"  # float32 | float64
    progress: bool = True  # show a tqdm progress bar
    # Check the configured network before training (experiments.diagnose: initial loss,
    # gradient check, activations, ...) and log the report; about 3 s for seed, 30 s for vgg.
    health_checks: bool = True
    # Log per-layer statistics every epoch (cnn.diagnostics.LayerMonitor): activation mean
    # and std, dead ReLUs, gradient norm and update-to-weight ratio, keyed by layer name.
    layer_stats: bool = True
    # Save a checkpoint (cnn.checkpoint) every this many epochs, to checkpoints/<run id>/
    # and as the run's artifact checkpoint/last.npz, for experiments.resume; 0: never.
    checkpoint_every: int = 1


@dataclass
class TrackingConfig:
    # None: $MLFLOW_TRACKING_URI if set, else SQLite mlflow.db in the working directory.
    uri: str | None = None
    experiment: str = "cifar10-cnn"
    run_name: str | None = None  # None: built from the choices, e.g. seed-he-lr0.03-n2500-s0
    log_model: bool = True  # log the network as an MLflow pyfunc model
    log_dataset: bool = True  # log the data as MLflow dataset inputs
    # A tracking server that is away never stops training (tracking.OfflineBuffer); at the
    # end, wait this long for it before saving the unsent metrics locally and stopping.
    offline_wait_s: float = 60.0


@dataclass
class TrainConfig:
    """The whole config of one training run, as `python -m experiments.train` sees it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optim: OptimConfig = MISSING  # chosen from the optim group (conf/optim/*.yaml)
    schedule: ScheduleConfig = MISSING  # chosen from the schedule group
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore. Call before Hydra composes a config.

    Called explicitly (not at import) so that importing this module does no work;
    storing the same node again just replaces it, so calling twice is harmless.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for name, schema in OPTIM_SCHEMAS.items():
        store.store(group="schema/optim", name=name, node=schema)
    for name, schema in SCHEDULE_SCHEMAS.items():
        store.store(group="schema/schedule", name=name, node=schema)
    for name, schema in DATA_SCHEMAS.items():
        store.store(group="schema/data", name=name, node=schema)


# -- checks beyond types --------------------------------------------------------------------


class ConfigError(ValueError):
    """A config value has the right type but is not allowed (unknown name, out of range)."""


def validate(cfg: Any) -> None:
    """Raise ConfigError naming the key if a value is outside what the run can use."""
    from cnn.data import Augmenter
    from cnn.initializers import NAMES as INIT_NAMES
    from cnn.models import ARCHITECTURES

    problems: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    check(cfg.model.name in ARCHITECTURES,
          f"model.name={cfg.model.name!r}: choose one of {', '.join(ARCHITECTURES)}")
    check(cfg.init.name in INIT_NAMES,
          f"init.name={cfg.init.name!r}: choose one of {', '.join(INIT_NAMES)}")
    check(cfg.init.std is None or cfg.init.std > 0, f"init.std must be > 0, got {cfg.init.std}")
    check(cfg.optim.name in OPTIM_SCHEMAS,
          f"optim.name={cfg.optim.name!r}: choose one of {', '.join(OPTIM_SCHEMAS)}")
    _check_schema_matches(cfg, "optim", OPTIM_SCHEMAS, check)
    check(cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}")
    check(cfg.optim.weight_decay >= 0,
          f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}")
    check(cfg.schedule.name in SCHEDULE_SCHEMAS,
          f"schedule.name={cfg.schedule.name!r}: choose one of {', '.join(SCHEDULE_SCHEMAS)}")
    _check_schema_matches(cfg, "schedule", SCHEDULE_SCHEMAS, check)
    momentum_range = cfg.schedule.get("momentum_range")
    check(momentum_range is None or (len(momentum_range) == 2
                                     and 0 <= momentum_range[0] <= momentum_range[1] < 1),
          f"schedule.momentum_range must be [low, high] with 0 <= low <= high < 1, "
          f"got {momentum_range}")
    check(momentum_range is None or cfg.optim.name in ("sgd", "rmsprop"),
          f"schedule.momentum_range needs an optimiser with momentum, not {cfg.optim.name}")
    check(cfg.schedule.warmup_epochs >= 0,
          f"schedule.warmup_epochs must be >= 0, got {cfg.schedule.warmup_epochs}")
    check(cfg.data.name in DATA_SCHEMAS,
          f"data.name={cfg.data.name!r}: choose one of {', '.join(DATA_SCHEMAS)}")
    _check_schema_matches(cfg, "data", DATA_SCHEMAS, check)
    check(cfg.data.name == "cifar10" or not cfg.data.download,
          f"data.download applies to cifar10 only, not data={cfg.data.name}")
    check(cfg.data.name != "digits" or cfg.data.root is None,
          f"data.root={cfg.data.root!r}: digits ship with scikit-learn and read no folder")
    image_size = cfg.data.get("image_size")
    # Three 2x2 poolings (vgg) must leave at least one pixel.
    check(image_size is None or image_size >= 8, f"data.image_size must be >= 8, got {image_size}")
    test_fraction = cfg.data.get("test_fraction")
    check(test_fraction is None or 0 < test_fraction < 1,
          f"data.test_fraction must be in (0, 1), got {test_fraction}")
    check(cfg.data.n_train is None or cfg.data.n_train >= 1,
          f"data.n_train must be >= 1 or null (all), got {cfg.data.n_train}")
    check(cfg.data.n_val >= 0, f"data.n_val must be >= 0, got {cfg.data.n_val}")
    try:  # the Augmenter checks its own arguments; ask it rather than repeat its rules
        Augmenter(**cfg.data.augment)
    except (TypeError, ValueError) as e:
        problems.append(f"data.augment: {e}")
    check(cfg.trainer.epochs >= 1, f"trainer.epochs must be >= 1, got {cfg.trainer.epochs}")
    check(cfg.trainer.batch_size >= 1,
          f"trainer.batch_size must be >= 1, got {cfg.trainer.batch_size}")
    check(cfg.trainer.eval_batch_size >= 1,
          f"trainer.eval_batch_size must be >= 1, got {cfg.trainer.eval_batch_size}")
    check(0 <= cfg.trainer.label_smoothing < 1,
          f"trainer.label_smoothing must be in [0, 1), got {cfg.trainer.label_smoothing}")
    check(cfg.trainer.dtype in ("float32", "float64"),
          f"trainer.dtype={cfg.trainer.dtype!r}: choose float32 or float64")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_schema_matches(cfg: Any, group: str, schemas: Mapping[str, type], check) -> None:
    # `optim.name=adam` on top of the sgd schema would build Adam from SGD's keys.
    node = cfg[group]
    if isinstance(node, DictConfig) and node.name in schemas:
        expected = schemas[node.name]
        check(OmegaConf.get_type(node) is expected,
              f"{group}.name={node.name!r} does not match the chosen {group} config; "
              f"choose it with `{group}={node.name}` instead")


# -- building configs outside a Hydra app ---------------------------------------------------


def config_from_container(container: Mapping[str, Any]) -> DictConfig:
    """A typed, validated TrainConfig from a plain nested dict (e.g. a logged config.yaml).

    The optimiser, schedule and data schemas are chosen by their `name`, so unknown keys and
    wrong types fail exactly as they would on the command line.
    """
    data = dict(container)
    try:
        optim_schema = OPTIM_SCHEMAS[data["optim"]["name"]]
        schedule_schema = SCHEDULE_SCHEMAS[data["schedule"]["name"]]
        data_schema = DATA_SCHEMAS[data.get("data", {}).get("name", "cifar10")]
    except KeyError as e:
        raise ConfigError(
            f"the config has no known optim.name / schedule.name / data.name ({e})") from e
    base = OmegaConf.structured(TrainConfig(optim=optim_schema(), schedule=schedule_schema(),
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
