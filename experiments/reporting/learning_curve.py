"""The learning curve of a sweep over training-set sizes: how the test error falls with
the number of training images, as the power law with a floor

    e(n) = a + b * n ** -c        (a: the error no amount of data removes; c: how fast it goes)

that Hestness et al. (2017) and Hoiem et al. (ICML 2021) fit to repeated trials.

It is fitted by least squares (scipy.optimize.curve_fit) to every run's error, each seed
a point, and its uncertainty comes from a bootstrap over the seeds: each resample draws,
at every size, that size's runs with replacement, and is fitted again. The intervals are
the resamples' 2.5th and 97.5th percentiles. Two numbers judge the curve:
  - its extrapolation to 50,000 images, the full CIFAR-10 training set;
  - its score: fitted on the sizes below the largest, how far its prediction at the
    largest lies from what the runs there measured. A curve that cannot predict the next
    doubling should not be trusted ten times further.

Runs are grouped by every swept key but the size and the seed; a group gets a curve when
it has 3 sizes or more and more runs than the curve has parameters.

    learning_curve.png   error against size (log), the runs, the curve and its band
    learning_curve.csv   one row per group: the parameters, the errors, with their CIs
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from experiments.reporting.collect import RunSummary
from experiments.reporting.groups import Stats, describe
from experiments.tracking import swept

TARGET_N = 50_000  # the full CIFAR-10 training set
RESAMPLES = 1000
PARAMETERS = 3
SIZE_KEY = "data.n_train"


@dataclass(frozen=True)
class PowerLaw:
    """e(n) = a + b * (n / n_ref) ** -c; scaled by the largest size so that b is the
    error above the floor there, and the fit is well conditioned."""

    a: float
    b: float
    c: float
    n_ref: float

    def error(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.a + self.b * (np.asarray(n, dtype=float) / self.n_ref) ** -self.c

    @property
    def b_unscaled(self) -> float:
        """b of e(n) = a + b * n ** -c, in images."""
        return self.b * self.n_ref ** self.c


@dataclass(frozen=True)
class Interval:
    """A value with its 95% bootstrap interval (nan bounds when there is none)."""

    value: float
    low: float
    high: float

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        if math.isnan(self.low):
            return f"{self.value * scale:.{digits}f}"
        return (f"{self.value * scale:.{digits}f} "
                f"[{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]")


@dataclass
class LearningCurve:
    """One group's fitted curve; errors are 1 - test accuracy, per size, seed by seed."""

    label: str
    errors: dict[float, list[float]]
    fit: PowerLaw
    a: Interval
    c: Interval
    at_largest: Interval  # the curve at the largest size
    extrapolated: Interval  # the curve at TARGET_N
    held_out: Interval | None  # fitted without the largest size, predicted there
    bands: tuple[np.ndarray, np.ndarray, np.ndarray]  # sizes, low, high of the curve
    resamples: int  # bootstrap fits that converged

    @property
    def largest(self) -> float:
        return max(self.errors)

    @property
    def observed_largest(self) -> Stats:
        return describe(self.errors[self.largest])

    @property
    def held_out_miss(self) -> float:
        """How far the held-out prediction lies from the measured mean at the largest
        size, in error (nan without a held-out fit)."""
        if self.held_out is None:
            return math.nan
        return self.held_out.value - self.observed_largest.mean


def fit_power_law(sizes: Sequence[float], errors: Sequence[float],
                  n_ref: float | None = None, start: PowerLaw | None = None) -> PowerLaw:
    """Least-squares e(n) = a + b (n / n_ref)^-c with 0 <= a <= 1, b >= 0, 0 <= c <= 5,
    from `start` (a bootstrap starts from the whole data's fit) or a rough guess."""
    from scipy.optimize import curve_fit  # here, not at the top: see groups.half_width

    n = np.asarray(sizes, dtype=float)
    e = np.asarray(errors, dtype=float)
    n_ref = float(n.max()) if n_ref is None else n_ref
    floor = 0.5 * float(e.min())
    guess = ((floor, max(float(e.mean()) - floor, 1e-3), 0.5) if start is None
             else (min(start.a, 1.0), start.b, min(start.c, 5.0)))
    (a, b, c), _ = curve_fit(lambda x, a, b, c: a + b * (x / n_ref) ** -c, n, e, p0=guess,
                             bounds=([0.0, 0.0, 0.0], [1.0, np.inf, 5.0]), maxfev=20_000)
    return PowerLaw(float(a), float(b), float(c), n_ref)


def _interval(value: float, samples: Sequence[float]) -> Interval:
    if len(samples) < 2:
        return Interval(value, math.nan, math.nan)
    low, high = np.percentile(samples, [2.5, 97.5])
    return Interval(value, float(low), float(high))


def _resample(errors: dict[float, list[float]], rng: np.random.Generator
              ) -> tuple[list[float], list[float]]:
    sizes, drawn = [], []
    for n, values in errors.items():
        picks = rng.integers(0, len(values), size=len(values))
        sizes += [n] * len(values)
        drawn += [values[i] for i in picks]
    return sizes, drawn


def _flat(errors: dict[float, list[float]]) -> tuple[list[float], list[float]]:
    return ([n for n, vs in errors.items() for _ in vs], [v for vs in errors.values() for v in vs])


def fit_curve(label: str, errors: dict[float, list[float]], resamples: int = RESAMPLES,
              seed: int = 0) -> LearningCurve:
    """The curve through `errors` (size -> each seed's error), with bootstrap intervals
    from `resamples` seeded resamples; no intervals when every size has one run."""
    errors = dict(sorted(errors.items()))
    fit = fit_power_law(*_flat(errors))
    largest = max(errors)
    smaller = {n: vs for n, vs in errors.items() if n < largest}
    can_hold_out = len(smaller) >= PARAMETERS and len(_flat(smaller)[1]) > PARAMETERS
    held = fit_power_law(*_flat(smaller), n_ref=fit.n_ref) if can_hold_out else None
    grid = np.geomspace(min(errors), TARGET_N, 60)
    rng = np.random.default_rng(seed)
    fits, held_fits = [], []
    if any(len(vs) > 1 for vs in errors.values()):
        for _ in range(resamples):
            sizes, drawn = _resample(errors, rng)
            try:
                fits.append(fit_power_law(sizes, drawn, fit.n_ref, fit))
                if held is not None:
                    held_fits.append(fit_power_law(*_resample(smaller, rng), fit.n_ref, held))
            except RuntimeError:  # curve_fit gave up on this resample; it is not counted
                continue
    curves = np.array([f.error(grid) for f in fits]) if fits else None
    band = ((grid, *np.percentile(curves, [2.5, 97.5], axis=0)) if curves is not None
            else (grid, fit.error(grid), fit.error(grid)))
    return LearningCurve(
        label=label, errors=errors, fit=fit,
        a=_interval(fit.a, [f.a for f in fits]), c=_interval(fit.c, [f.c for f in fits]),
        at_largest=_interval(float(fit.error(largest)), [float(f.error(largest)) for f in fits]),
        extrapolated=_interval(float(fit.error(TARGET_N)),
                               [float(f.error(TARGET_N)) for f in fits]),
        held_out=None if held is None else _interval(
            float(held.error(largest)), [float(f.error(largest)) for f in held_fits]),
        bands=band, resamples=len(fits))


def size_groups(runs: Sequence[RunSummary]) -> dict[str, dict[float, list[float]]]:
    """Each group's errors by size: the runs that finished with a test accuracy, grouped by
    every swept key but the size and the seed; runs of size "all" have no number and stay out."""
    keys = [k for k in dict.fromkeys(k for r in runs for k in r.swept)
            if k not in (SIZE_KEY, swept.SEED_KEY)]
    grouped: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status != "FINISHED" or r.test_acc is None or not math.isfinite(r.size):
            continue
        label = swept.label({k: r.swept.get(k, "") for k in keys}, keys) or "all runs"
        grouped[label][r.size].append(1.0 - r.test_acc)
    return {label: dict(by_size) for label, by_size in grouped.items()}


def learning_curves(runs: Sequence[RunSummary], resamples: int = RESAMPLES
                    ) -> list[LearningCurve]:
    """A curve for each group with 3 sizes or more and more runs than parameters."""
    curves = []
    for label, errors in size_groups(runs).items():
        if len(errors) >= PARAMETERS and len(_flat(errors)[1]) > PARAMETERS:
            try:
                curves.append(fit_curve(label, errors, resamples))
            except RuntimeError:  # no least-squares solution: the section says so
                continue
    return curves


def sweeps_size(runs: Sequence[RunSummary]) -> bool:
    return any(SIZE_KEY in r.swept for r in runs)
