"""Typed schemas for every config group: which keys exist and what type each one has.

Hydra merges every YAML file in `conf/` into its schema, so a mistyped key
(`optim.lrr=0.1`) or a wrong type (`trainer.epochs=ten`) fails before anything runs,
with the full key in the message.

The schemas of optimisers, schedules and initialisers are not written here: they are read
off the signatures of what `cnn.optim.OPTIMIZERS`, `cnn.schedules.SCHEDULES` and
`cnn.initializers.INITIALIZERS` hold (see `schema_from_signature`), so the definition is
the one place its keys, types and defaults are stated. Likewise each model family's schema is read
off its knobs (`cnn.models.architecture_knobs`, see `model_schemas`). Datasets define
their schema classes in `experiments.datasets`. `TrainConfig` is the whole config of one run.
"""

from __future__ import annotations

import copy
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from omegaconf import MISSING

from cnn.initializers import INITIALIZERS
from cnn.models import ARCHITECTURES, architecture_knobs
from cnn.optim import OPTIMIZERS
from cnn.schedules import SCHEDULES
from experiments.datasets.base import DataConfig
from experiments.datasets.base import registered as registered_datasets

# -- model and initialisation ---------------------------------------------------------------


@dataclass
class ModelConfig:
    name: str = "seed"  # an architecture registered in cnn.models.ARCHITECTURES


def _knob_field(annotation: Any, default: Any) -> tuple[Any, Any]:
    """A family knob's (type, field) in a schema. OmegaConf has no plain `dict` item type,
    so a list of layer specs is a list of anything; the family checks each spec itself."""
    if annotation == list[dict]:
        return list[Any], field(default_factory=lambda: copy.deepcopy(default))
    if annotation == list[int]:
        return list[int], field(default_factory=lambda: list(default))
    return annotation, field(default=default)


def model_schema(name: str) -> type[ModelConfig]:
    """The schema of one model family: `name` and its knobs, typed, with their defaults."""
    own = [("name", str, field(default=name))]
    for knob, (annotation, default) in architecture_knobs(name).items():
        own.append((knob, *_knob_field(annotation, default)))
    return make_dataclass(f"{name.capitalize()}ModelConfig", own, bases=(ModelConfig,))


@functools.cache
def model_schemas() -> dict[str, type[ModelConfig]]:
    """name -> schema of every registered model family (cached: Hydra stores these)."""
    return {name: model_schema(name) for name in ARCHITECTURES}


@dataclass
class InitConfig:
    """What every initialiser's schema shares; its knobs (std, gain, ...) are read off it."""

    name: str = MISSING  # an initialiser registered in cnn.initializers.INITIALIZERS
    # Start the first convolution's filters as the whitening directions of the training
    # images' patches (cnn.whitening), after drawing them as `name` says.
    whiten_first_conv: bool = False


# The arguments every initialiser is called with by the layers; the ones after are its knobs.
INIT_SUPPLIED = ("shape", "fan_in", "fan_out", "rng")


# -- optimisers and schedules: bases, and schemas read off the registered classes ----------


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 0.01  # the base rate; for onecycle, the peak rate
    weight_decay: float = 0.0  # L2 penalty added to the gradient (decoupled for adamw)


@dataclass
class ScheduleConfig:
    name: str = MISSING
    # Linear warm-up in front of the schedule, in epochs (fractions allowed); epochs rather
    # than steps so that a preset keeps its meaning when the batch size or n_train changes.
    warmup_epochs: float = 0.0


# Constructor arguments the run supplies itself rather than the config.
SCHEDULE_SUPPLIED = ("lr", "total_steps", "steps_per_epoch")


def _config_type(hint: Any) -> Any:
    """A constructor's type hint as a type OmegaConf checks: sequences become lists."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        inner = next(a for a in args if a is not type(None))
        return typing.Optional[_config_type(inner)]  # noqa: UP045 (make_dataclass needs a type)
    if origin in (list, tuple, Sequence):
        return list[args[0] if args and args[0] is not Ellipsis else Any]
    return hint if hint in (int, float, bool, str) else Any


def schema_from_signature(base: type, name: str, build: Callable,
                          supplied: Sequence[str] = (), suffix: str = "Config") -> type:
    """A schema, subclassing `base`, whose keys are `build`'s keyword arguments.

    Each argument keeps its annotated type and its default; one without a default takes
    the base's default for that key if it has one, else it must be set (MISSING).
    `supplied` names arguments the run passes itself, which are not config keys. The
    schema is named after the definition (SGD -> SGDConfig, he_normal -> HeNormal+suffix).
    """
    hints = typing.get_type_hints(build.__init__ if inspect.isclass(build) else build)
    inherited = {f.name: f for f in fields(base)}
    own = [("name", str, field(default=name))]
    for param in inspect.signature(build).parameters.values():
        if param.name in supplied or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not param.empty:
            default = field(default=param.default)
        elif param.name in inherited and inherited[param.name].default is not NO_DEFAULT:
            default = field(default=inherited[param.name].default)
        else:
            default = field(default=MISSING)
        own.append((param.name, _config_type(hints.get(param.name, Any)), default))
    title = build.__name__ if inspect.isclass(build) else "".join(
        part.capitalize() for part in build.__name__.split("_"))
    return make_dataclass(f"{title}{suffix}", own, bases=(base,))


@functools.cache
def optim_schemas() -> dict[str, type[OptimConfig]]:
    """name -> schema of every registered optimiser (cached: Hydra stores these classes)."""
    return {name: schema_from_signature(OptimConfig, name, cls)
            for name, cls in OPTIMIZERS.items()}


@functools.cache
def schedule_schemas() -> dict[str, type[ScheduleConfig]]:
    """name -> schema of every registered schedule (cached: Hydra stores these classes)."""
    return {name: schema_from_signature(ScheduleConfig, name, cls, SCHEDULE_SUPPLIED)
            for name, cls in SCHEDULES.items()}


@functools.cache
def init_schemas() -> dict[str, type[InitConfig]]:
    """name -> schema of every registered initialiser (cached: Hydra stores these classes)."""
    return {name: schema_from_signature(InitConfig, name, draw, INIT_SUPPLIED, "InitConfig")
            for name, draw in INITIALIZERS.items()}


def data_schemas() -> dict[str, type[DataConfig]]:
    """name -> schema of every dataset in experiments.datasets."""
    return dict(registered_datasets())


# -- training loop, tracking, the whole run -------------------------------------------------


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 500  # batch size for validation and test passes
    seed: int = 0  # fixes every random stream of the run (cnn.rng.make_generators)
    label_smoothing: float = 0.0
    # Decay of an exponential moving average of the weights (cnn.averaging), updated after
    # every step and tested, logged and saved instead of the trained weights; 0: none.
    weight_average: float = 0.0
    # Test-time augmentation: test logits are the mean over each image and its mirror image.
    test_flip: bool = False
    # Test-time augmentation by shifts: with n > 0, test logits are half the image's and a
    # quarter each of it moved n pixels down-right and up-left (cnn.training.evaluate).
    test_translate: int = 0
    dtype: str = "float32"  # float32 | float64
    progress: bool = True  # show a tqdm progress bar
    # Check the configured network before training (experiments.runs.health: initial loss,
    # gradient check, activations, ...) and log the report; about 3 s for seed, 30 s for vgg.
    health_checks: bool = True
    # Log per-layer statistics every epoch (cnn.diagnostics.LayerMonitor): activation mean
    # and std, dead ReLUs, gradient norm and update-to-weight ratio, keyed by layer name.
    layer_stats: bool = True
    # Save a checkpoint (cnn.checkpoint) every this many epochs, to checkpoints/<run id>/
    # and as the run's artifact checkpoint/last.npz, for experiments.resume; 0: never.
    checkpoint_every: int = 1
    # Log the gradient noise scale tr(Sigma)/|G|^2 every epoch (cnn.diagnostics.noise_scale:
    # grad_noise_scale, with grad_noise_trace, grad_sq_norm and steps), from the halves of
    # each step's batch; about a third more time per step, the training unchanged.
    noise_scale: bool = False
    # After training, the loss along the straight line from the initial to the trained
    # weights (experiments.runs.interpolation): train loss on interpolation_images training
    # images (drawn with np.random.default_rng(seed)) and test loss, at interpolation_points
    # alphas from -interpolation_margin to 1 + interpolation_margin. interpolation_bn: the
    # batch-norm statistics at each alpha, "blend" (interpolated like the weights) or
    # "recompute" (estimated afresh on those training images, in training batches).
    interpolation: bool = False
    interpolation_points: int = 29
    interpolation_margin: float = 0.2
    interpolation_images: int = 1000
    interpolation_bn: str = "blend"
    # After training, the training loss on a landscape_points x landscape_points grid over
    # [-landscape_span, landscape_span]^2 around the trained weights, along two
    # filter-normalised random directions drawn from np.random.default_rng(landscape_seed)
    # (experiments.runs.landscape), on landscape_images training images drawn as
    # interpolation_images are; eval mode, the trained batch-norm statistics.
    landscape: bool = False
    landscape_points: int = 21
    landscape_span: float = 1.0
    landscape_images: int = 1000
    landscape_seed: int = 0
    # The sharpness, the top eigenvalue of the training loss's Hessian (cnn.diagnostics.
    # sharpness), every this many epochs and before training, on the first
    # sharpness_images training images (unaugmented, in training batches): the metrics
    # sharpness and sharpness_threshold (SGD's stability threshold, 2/lr with no momentum,
    # at the epoch's rate); 0: off. About 10-40 gradients over those images each time.
    sharpness_every: int = 0
    sharpness_images: int = 1000


@dataclass
class TrackingConfig:
    # None: $MLFLOW_TRACKING_URI if set, else SQLite mlflow.db in the working directory.
    uri: str | None = None
    experiment: str = "cifar10-cnn"
    run_name: str | None = None  # None: built from the choices, e.g. seed-he-lr0.03-n2500-s0
    log_model: bool = True  # log the network as an MLflow pyfunc model
    log_dataset: bool = True  # log the data as MLflow dataset inputs
    # A tracking server that is away never stops training (tracking.offline); at the end,
    # wait this long for it before saving the unsent metrics locally and stopping.
    offline_wait_s: float = 60.0


@dataclass
class LRFindConfig:
    """The learning-rate range test (cnn.lr_range; `make lr-find`)."""

    # Train at the range test's suggestion instead of optim.lr: the run first runs the
    # test (from the configured init, on its own network) and logs both.
    apply: bool = False
    min_lr: float = 1e-5
    max_lr: float = 10.0
    steps: int = 200  # at most; the test stops early once the loss diverges
    rule: str = "min_div_10"  # min_div_10 | steepest (cnn.lr_range.RULES)
    beta: float = 0.98  # decay of the loss's moving average
    diverge_factor: float = 4.0  # stop once the smoothed loss exceeds this x its best


@dataclass
class SearchConfig:
    """A search (sweep=search, hydra/sweeper=optuna) over replicates (experiments.sweeps.trial)."""

    # Seeds each trial trains, trainer.seed + 0 .. seeds - 1, the same in every trial; the
    # trial's objective is their mean test accuracy. 1: one run per trial, as before.
    seeds: int = 1


@dataclass
class TrainConfig:
    """The whole config of one training run, as `python -m experiments.train` sees it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = MISSING  # chosen from the init group (conf/init/*.yaml)
    optim: OptimConfig = MISSING  # chosen from the optim group (conf/optim/*.yaml)
    schedule: ScheduleConfig = MISSING  # chosen from the schedule group
    data: DataConfig = MISSING  # chosen from the data group (conf/data/*.yaml)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    lr_find: LRFindConfig = field(default_factory=LRFindConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    # Extra training callbacks, by name: {"stop": {"_target_": "my.module.Class", ...}},
    # instantiated with Hydra and given every batch's and epoch's events (cnn.training).
    callbacks: dict[str, Any] = field(default_factory=dict)
