"""The architectures the experiments compare, built by name with typed knobs.

Each family registers itself where it is defined (cnn/models/registry.py says
how): seed and vgg (classic.py), resnet and plain (resnet.py), custom (custom.py);
memory.py estimates a network's memory from its knobs.
Every module of this package is imported here, so a family in a new module is
registered with nothing else to edit.
"""

import importlib
import pkgutil

from cnn.models.classic import seed_cnn, vgg_cnn
from cnn.models.registry import (
    ARCHITECTURES,
    KnobError,
    architecture,
    architecture_knobs,
    build_model,
    check_model,
    model_memory_problem,
    reinitialize,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # each registers its families

__all__ = [
    "ARCHITECTURES",
    "KnobError",
    "architecture",
    "architecture_knobs",
    "build_model",
    "check_model",
    "model_memory_problem",
    "reinitialize",
    "seed_cnn",
    "vgg_cnn",
]
