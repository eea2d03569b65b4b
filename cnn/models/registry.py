"""The registry of model families, and `build_model`, which builds any of them by name.

A family is a function registered where it is defined:

    @architecture("resnet")
    def resnet(input_shape, num_classes, init, rng, *, depth: int = 20, ...) -> list[Layer]

It draws every weight from `init` with `rng`, in a fixed order, and returns its
layers, or (layers, names) to name some of them itself (None keeps the default
name: "conv1", "bn1", ...). Its knobs are keyword-only, annotated with one of
KNOB_TYPES and have defaults, so a configuration schema can be derived from the
signature alone (`architecture_knobs`). List defaults are shared between calls:
families read them and never change them.

A family with rules about its knobs' values states them in a check registered with
it, `@architecture("resnet", check=check_resnet)`: `check(input_shape, **knobs)` raises
KnobError naming the knob. `check_model` runs it (and the type checks) without
building anything, so a config is checked before a network exists; `build_model`
runs it first too. A family whose knobs can ask for more memory than a machine holds
registers a footprint as well (cnn/models/memory.py), which `model_memory_problem` and
`build_model` compare with the machine's memory before allocating.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from cnn.initializers import get_initializer
from cnn.layers import Dropout, Layer, WeightedLayer
from cnn.layers.fused import fuse_layers
from cnn.models.memory import Estimator, memory_problem, physical_memory
from cnn.network import Sequential
from cnn.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

ARCHITECTURES: Registry[Callable[..., Any]] = Registry("model")
KNOB_TYPES: tuple[Any, ...] = (int, float, bool, str, list[int], list[dict])
_POSITIONAL = ("input_shape", "num_classes", "init", "rng")


def _knob_parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a family; TypeError if it breaks the convention."""
    params = list(inspect.signature(fn, eval_str=True).parameters.values())
    positional = tuple(p.name for p in params if p.kind is not p.KEYWORD_ONLY)
    if positional != _POSITIONAL:
        raise TypeError(f"{fn.__name__} must take {', '.join(_POSITIONAL)} before its "
                        f"keyword-only knobs, not {', '.join(positional)}")
    knobs = {p.name: p for p in params if p.kind is p.KEYWORD_ONLY}
    for p in knobs.values():
        if p.annotation not in KNOB_TYPES or p.default is p.empty:
            raise TypeError(f"{fn.__name__}: knob {p.name!r} needs a default and one of "
                            f"the types {', '.join(map(_type_name, KNOB_TYPES))}")
    return knobs


class KnobError(ValueError):
    """A knob's value that its family refuses; `knob` is the knob's name."""

    def __init__(self, knob: str, message: str) -> None:
        super().__init__(message)
        self.knob = knob


Check = Callable[..., None]
_CHECKS: dict[str, Check] = {}
_FOOTPRINTS: dict[str, Estimator] = {}


def architecture(
    name: str, check: Check | None = None, footprint: Estimator | None = None
) -> Callable[[F], F]:
    """Register a family under `name` (a decorator); checks the family's signature.

    `check(input_shape, **knobs)`, if given, raises KnobError for values the family
    cannot build (see check_model); `footprint(input_shape, **knobs)` estimates its
    memory (cnn/models/memory.py) for knobs that passed the check."""

    def register(fn: F) -> F:
        _knob_parameters(fn)
        if check is not None:
            _CHECKS[name] = check
        if footprint is not None:
            _FOOTPRINTS[name] = footprint
        return ARCHITECTURES.register(name)(fn)

    return register


def architecture_knobs(name: str) -> dict[str, tuple[Any, Any]]:
    """{knob: (type, default)} of a family, e.g. {"depth": (int, 20), "widths": (list[int],
    [16, 32, 64]), ...}; the defaults are copies."""
    family = _family(name)
    return {k: (p.annotation, copy.deepcopy(p.default))
            for k, p in _knob_parameters(family).items()}


def _family(name: str) -> Callable[..., Any]:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)  # list[int]


def fits_type(value: Any, annotation: Any) -> bool:
    """Whether `value` is of a knob type: an int counts as a float, a bool as no int."""
    if annotation is bool:
        return isinstance(value, bool | np.bool_)
    if annotation is int:
        return isinstance(value, int | np.integer) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float | np.integer | np.floating) \
            and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    # list[int] or list[dict]: any sequence (a config's list too) of such items
    item = int if annotation == list[int] else Mapping
    return (isinstance(value, Sequence) and not isinstance(value, str)
            and all(fits_type(v, int) if item is int else isinstance(v, Mapping) for v in value))


def check_model(name: str, input_shape: Sequence[int] = (32, 32, 3), **knobs: Any) -> None:
    """Whether `name` builds with these knobs on images of `input_shape`, without building:
    the knobs' names and types, then the family's own check. Raises KnobError naming the
    knob (ValueError for an unknown family)."""
    params = _knob_parameters(_family(name))
    for knob, value in knobs.items():
        if knob not in params:
            known = ", ".join(params) if params else "none"
            raise KnobError(knob, f"model {name!r} has no knob {knob!r}; its knobs: {known}")
        if not fits_type(value, params[knob].annotation):
            raise KnobError(knob, f"model {name!r}: knob {knob!r} must be "
                                  f"{_type_name(params[knob].annotation)}, got {value!r}")
    if name in _CHECKS:
        defaults = {k: p.default for k, p in params.items()}
        _CHECKS[name](tuple(input_shape), **{**defaults, **knobs})


def model_memory_problem(
    name: str,
    input_shape: Sequence[int],
    knobs: Mapping[str, Any],
    *,
    batch_size: int = 1,
    itemsize: int = 4,
    available: int | None = None,
) -> tuple[str, str] | None:
    """(knob, sentence) if training this network in batches of `batch_size` would need more
    than `available` bytes (default: the machine's memory), else None; estimated from the
    knobs, which check_model has passed, allocating nothing. Families without a
    footprint are not estimated."""
    if name not in _FOOTPRINTS:
        return None
    defaults = {k: p.default for k, p in _knob_parameters(_family(name)).items()}
    footprint = _FOOTPRINTS[name](tuple(input_shape), **{**defaults, **knobs})
    problem = memory_problem(footprint, batch_size=batch_size, itemsize=itemsize,
                             available=physical_memory() if available is None else available)
    return None if problem is None else (footprint.knob, problem)


# -- helpers the families share ---------------------------------------------------------------
def check_choice(knob: str, value: str, choices: Sequence[str], family: str = "") -> str:
    """`value` if it is one of `choices`, else KnobError(knob) saying which are."""
    if value not in choices:
        raise KnobError(knob, f"{family} {knob} must be one of {', '.join(choices)}, "
                              f"got {value!r}".lstrip())
    return value


def check_dropout(p: float, family: str) -> None:
    """A dropout knob's rule, as Dropout states it (0 <= p < 1), named as the knob."""
    if not 0.0 <= p < 1.0:
        raise KnobError("dropout", f"{family} dropout probability must be in [0, 1), got {p}")


def check_widths(widths: Sequence[int], family: str) -> None:
    if not widths or min(widths) < 1:
        raise KnobError("widths", f"{family} widths must be one or more positive channel "
                                  f"counts, got {list(widths)}")


def dropout_layers(p: float, rng: np.random.Generator) -> list[Layer]:
    """[Dropout(p)] for p > 0, else []. Its generator is spawned from the weights' one,
    which leaves that stream's draws alone: turning dropout on changes no weight."""
    return [Dropout(p, rng=rng.spawn(1)[0])] if p > 0 else []


def build_model(
    name: str,
    *,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    init: str = "he",
    init_knobs: Mapping[str, float] | None = None,
    seed: int = 0,
    dtype: np.dtype | type = np.float32,
    fuse: bool = False,
    **knobs: Any,
) -> Sequential:
    """Build an architecture by name with its weights drawn by `init` from `seed`.

    `knobs` are the family's own (architecture_knobs(name)), e.g.
    build_model("resnet", depth=8, widths=[8, 16, 32]); an unknown one is a ValueError.
    `init` is an initialiser name (he, xavier, normal, unit_normal, orthogonal,
    ...); `init_knobs` its keyword arguments, e.g. {"std": 0.1} or {"gain": 2.0}.

    The classifier (last Dense) is drawn by the same scheme. With He init the logits
    of a fresh network have a variance of a few units (max-pooling raises the
    features' second moment), so the loss starts near 3 rather than ln(10) = 2.3.
    Scaling the classifier by 0.1 starts it at ln(10), but on seed_subset made no
    difference beyond seed noise (mean test accuracy 66.6% over 3 runs, against
    66.5% over 5), so every scheme is left as it is defined.

    The network's input is images, whose gradient nobody needs: it is built with
    input_grad False (set it True to get backward's input gradient).

    With `fuse`, each batch norm followed by a ReLU is one BatchNormReLU2D layer
    (cnn/layers/fused.py): the same weights, parameter names and results within
    rounding, in fewer passes over memory.
    """
    family = _family(name)
    check_model(name, input_shape, **knobs)
    # One image's worth at least must fit, or the first allocation fails with NumPy's
    # error, which names no knob (a config is checked with its batch size before this).
    too_big = model_memory_problem(name, input_shape, knobs, itemsize=np.dtype(dtype).itemsize)
    if too_big is not None:
        raise KnobError(too_big[0], f"model {name!r}: {too_big[1]}")
    draw = get_initializer(init, **(init_knobs or {}))
    shape = tuple(input_shape)
    built = family(shape, num_classes, draw, np.random.default_rng(seed), **knobs)
    layers, names = built if isinstance(built, tuple) else (built, None)
    if fuse:
        layers, names = fuse_layers(layers, names or [None] * len(layers))
    net = Sequential(layers, names, input_shape=shape).to(dtype)
    net.input_grad = False
    return net


def reinitialize(
    net: Sequential, init: str, rng: np.random.Generator, **init_knobs: float | None
) -> None:
    """Redraw every weight of `net` in place with another initialiser (its knobs, e.g.
    std=0.5, as keywords), blocks' included; biases to zero (or drawn too, by an
    initialiser that draws them, such as `pytorch`)."""
    draw = get_initializer(init, **init_knobs)
    for _, layer in net.named_modules():
        if isinstance(layer, WeightedLayer):
            layer.reset_parameters(draw, rng)
