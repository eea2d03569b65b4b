"""The architectures the experiments compare, built by name with typed knobs.

Each family registers itself where it is defined (cnn/models/registry.py says
how): seed and vgg (classic.py), resnet and plain (resnet.py), custom (custom.py).
"""

from cnn.models import classic, custom, resnet  # noqa: F401 (importing registers them)
from cnn.models.classic import seed_cnn, vgg_cnn
from cnn.models.registry import (
    ARCHITECTURES,
    architecture,
    architecture_knobs,
    build_model,
    reinitialize,
)

__all__ = [
    "ARCHITECTURES",
    "architecture",
    "architecture_knobs",
    "build_model",
    "reinitialize",
    "seed_cnn",
    "vgg_cnn",
]
