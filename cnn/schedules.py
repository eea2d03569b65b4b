"""Learning-rate schedules: callables mapping an optimiser step (0-based) to a rate.

Steps are optimiser updates, not epochs, so a schedule behaves the same for
any batch size once `total_steps` = epochs * batches per epoch.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

from cnn.registry import Registry

# A schedule's constructor takes `lr` first, and `total_steps` and `steps_per_epoch` if it
# needs them (make_schedule passes those); its other arguments are its config keys.
SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


class Schedule:
    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def momentum(self, step: int) -> float | None:
        """The momentum to use at `step`, or None to leave the optimiser's own."""
        return None


@SCHEDULES.register("constant")
class Constant(Schedule):
    def __init__(self, lr: float) -> None:
        self.lr = lr

    def __call__(self, step: int) -> float:
        return self.lr


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """Multiply the rate by `gamma` every `step_epochs` epochs of `steps_per_epoch` steps.

    Epochs rather than steps, so that a config keeps its meaning when the batch size or
    the number of training images changes."""

    def __init__(
        self, lr: float, steps_per_epoch: int, step_epochs: int = 10, gamma: float = 0.1
    ) -> None:
        if step_epochs < 1:
            raise ValueError(f"step_epochs must be >= 1, got {step_epochs}")
        self.lr, self.gamma = lr, gamma
        self.step_size = max(step_epochs * steps_per_epoch, 1)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half a cosine from `start` (fraction 0) to `end` (fraction 1)."""
    fraction = min(max(fraction, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


@SCHEDULES.register("cosine")
class Cosine(Schedule):
    """Cosine decay from `lr` to `min_lr` over `total_steps`."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0) -> None:
        self.lr, self.total_steps, self.min_lr = lr, max(total_steps, 1), min_lr

    def __call__(self, step: int) -> float:
        return _cosine(self.lr, self.min_lr, step / self.total_steps)


@SCHEDULES.register("onecycle")
class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin), with cosine annealing in both phases.

    Rises from lr / div_factor to its peak, lr, over the first `pct_start` of the
    steps, then falls to lr / (div_factor * final_div_factor) at the end.
    With `momentum_range=(low, high)` the momentum moves the opposite way, from
    high to low at the peak and back: a large step gets less inertia.
    """

    def __init__(
        self,
        lr: float,
        total_steps: int,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        momentum_range: Sequence[float] | None = None,
    ) -> None:
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
        if momentum_range is not None:
            momentum_range = tuple(momentum_range)
            if not (len(momentum_range) == 2 and 0 <= momentum_range[0] <= momentum_range[1] < 1):
                raise ValueError(f"momentum_range must be [low, high] with 0 <= low <= high < 1, "
                                 f"got {list(momentum_range)}")
        self.max_lr, self.total_steps = lr, max(total_steps, 2)
        self.initial_lr = lr / div_factor
        self.final_lr = self.initial_lr / final_div_factor
        self.peak_step = max(pct_start * self.total_steps - 1, 1.0)
        self.momentum_range = momentum_range

    def _phase(self, step: int) -> tuple[bool, float]:
        """(rising, fraction of that phase done)."""
        if step <= self.peak_step:
            return True, step / self.peak_step
        last = self.total_steps - 1
        return False, (step - self.peak_step) / (last - self.peak_step)

    def __call__(self, step: int) -> float:
        rising, fraction = self._phase(step)
        if rising:
            return _cosine(self.initial_lr, self.max_lr, fraction)
        return _cosine(self.max_lr, self.final_lr, fraction)

    def momentum(self, step: int) -> float | None:
        if self.momentum_range is None:
            return None
        low, high = self.momentum_range
        rising, fraction = self._phase(step)
        return _cosine(high, low, fraction) if rising else _cosine(low, high, fraction)


class Warmup(Schedule):
    """Linear warm-up over `warmup_steps` in front of any schedule.

    The rate climbs linearly to `after(0)`; then `after` runs from its own step 0.
    """

    def __init__(self, after: Schedule, warmup_steps: int) -> None:
        self.after, self.warmup_steps = after, warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.after(0) * (step + 1) / (self.warmup_steps + 1)
        return self.after(step - self.warmup_steps)

    def momentum(self, step: int) -> float | None:
        return self.after.momentum(max(step - self.warmup_steps, 0))


def make_schedule(
    name: str,
    lr: float,
    total_steps: int,
    *,
    steps_per_epoch: int = 1,
    warmup_steps: int = 0,
    **kwargs,
) -> Schedule:
    """Build a registered schedule by name; `lr` is the base (or, for onecycle, the peak) rate.

    `total_steps` includes any warm-up; the schedule after it gets the rest. `kwargs` are
    the schedule's own arguments, e.g. min_lr for cosine, pct_start for onecycle.
    """
    cls = SCHEDULES[name]
    wants = inspect.signature(cls).parameters
    given = {"total_steps": max(total_steps - warmup_steps, 1), "steps_per_epoch": steps_per_epoch}
    schedule = cls(lr, **{k: v for k, v in given.items() if k in wants}, **kwargs)
    return Warmup(schedule, warmup_steps) if warmup_steps > 0 else schedule
