"""How much memory a network would take, worked out from its knobs before anything is
allocated, and the refusal of one that does not fit the machine.

A family that can be asked for more than any machine holds (custom's layer specs: a
convolution with 10^8 channels, a dense layer of 10^9 units) registers a footprint with
`@architecture(name, footprint=...)`: `footprint(input_shape, **knobs)` returns the
network's parameter count, the values one image's forward pass keeps, and the knob and
part that dominate. The estimate counts each parameter four times (the weight, its
gradient, two optimiser slots as Adam keeps) and each kept value twice per image of a
batch (the forward pass's, and the backward pass's gradient of it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Footprint:
    params: int  # parameter count
    activations: int  # values one image's forward pass keeps (im2col columns included)
    knob: str  # the knob that sets them, e.g. "layers"
    largest: str  # the part that needs the most, e.g. "custom layers[0] (conv)"


Estimator = Callable[..., Footprint]


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimated_bytes(footprint: Footprint, batch_size: int, itemsize: int) -> int:
    """Bytes a training step needs, about: see the module's docstring."""
    return itemsize * (4 * footprint.params + 2 * batch_size * footprint.activations)


def human(n: float) -> str:
    """1288490188 -> '1.2 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def memory_problem(
    footprint: Footprint, *, batch_size: int, itemsize: int, available: int | None
) -> str | None:
    """A sentence saying the network does not fit `available` bytes, or None if it does
    (or the machine's memory is unknown)."""
    need = estimated_bytes(footprint, batch_size, itemsize)
    if available is None or need <= available:
        return None
    return (f"needs about {human(need)} to train ({footprint.params:,} parameters, "
            f"{footprint.activations:,} values kept per image, batches of {batch_size}), "
            f"more than this machine's {human(available)} of memory; {footprint.largest} "
            f"needs the most")
