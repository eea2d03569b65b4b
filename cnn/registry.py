"""Name -> thing tables, filled where each thing is defined.

    OPTIMIZERS = Registry("optimiser")

    @OPTIMIZERS.register("sgd")
    class SGD(Optimizer): ...

    OPTIMIZERS["sgd"]          # the class; an unknown name raises ValueError listing the known ones

A registry is filled once, by the decorators, when its module is imported; after that it is
only read. The harness builds its config schemas from what the registries hold, so a new
optimiser, schedule, initialiser or model is one registered definition plus one YAML file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of named definitions that says what it holds when a name is missing."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind  # "optimiser", "schedule", ...: used in error messages

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator: file the definition under each of `names` (the first is its own)."""

        def add(thing: T) -> T:
            for name in names:
                if name in self:
                    raise ValueError(f"two {self.kind}s are registered as {name!r}")
                super(Registry, self).__setitem__(name, thing)
            return thing

        return add

    def __missing__(self, name: str) -> T:
        raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
