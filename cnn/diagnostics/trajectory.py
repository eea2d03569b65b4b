"""What happened during training, read from a run's logged metric series.

The checks before training (`health`) say what might go wrong; this says what did, from
plain dicts {metric: {step: value}} of the series a run logs: `train_loss`, `train_acc`,
`val_loss` (step = epoch), `LayerMonitor`'s `<layer>.dead_frac` and `<layer>.grad_norm`
(step 0: untrained), and `sharpness`, `sharpness_threshold` when measured. The causes,
each with when it began:

- divergence: the loss stopped being finite (the step, and the sharpness against its
  stability threshold 2/η, or 2(1+β)/η with momentum, if it was measured);
- units dying: a ReLU layer's dead fraction crossed `dead` from below;
- gradients vanishing: a layer's weight-gradient norm fell `vanish` times below its start,
  or below its start's share of the largest layer's, while the loss was still high;
- overfitting: validation loss rose by `overfit_rise` over its minimum while training
  loss, already below chance level, kept falling;
- a plateau at chance: the last `plateau_epochs` epochs (all, if fewer) with a loss near
  ln K ((1 - chance_loss_margin)·ln K to 2·ln K) and chance accuracy, or a loss within
  `uniform_loss_margin`·ln K of ln K (a near-uniform guess, whatever the accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

Series = Mapping[str, Mapping[int, float]]  # metric -> {step: value}

CONVERGENCE_RULE = (
    "a run converged when it FINISHED with a final training loss of at most half of ln K "
    "(1.15 for 10 classes), the loss of a uniform guess: the right label then gets, as a "
    "geometric mean, at least 1/√K of the probability (0.32), √K times chance. FAILED and "
    "KILLED runs did not converge. It judges the optimisation, not generalisation: a run "
    "that memorised its training images converged, and a rising validation loss is "
    "diagnosed as overfitting")


class Cause(StrEnum):
    DIVERGED = "diverged"
    UNITS_DIED = "units died"
    GRADIENTS_VANISHED = "gradients vanished"
    OVERFITTING = "overfitting"
    CHANCE_PLATEAU = "plateau at chance"
    STOPPED = "stopped"  # killed, or failed with an error other than divergence


@dataclass(frozen=True)
class Rules:
    """The bounds each cause is judged by (see the module's docstring)."""

    dead: float = 0.9
    vanish: float = 100.0
    overfit_rise: float = 0.10
    plateau_epochs: int = 3
    chance_acc_margin: float = 0.05  # accuracy at most 1/K + this is chance
    chance_loss_margin: float = 0.10  # a loss above (1 - this)·ln K is near chance
    uniform_loss_margin: float = 0.05  # one within this·ln K of it is at chance
    converged_loss: float = 0.5  # of ln K: see CONVERGENCE_RULE


@dataclass(frozen=True)
class RunEnd:
    """How a run ended: its status, and for a failure its reason, epoch and step."""

    status: str = "FINISHED"
    reason: str = ""
    epoch: int | None = None
    step: int | None = None
    diverged: bool = False  # the loss stopped being finite (cnn.training.DivergenceError)


@dataclass(frozen=True)
class Finding:  # one cause, when it began, and what was seen in plain words
    cause: Cause
    epoch: int  # when it began; 0 is the untrained network
    text: str


@dataclass(frozen=True)
class TrainingDiagnosis:
    """Whether the run converged (and why not), and what happened, divergence first and
    the rest in the order it began."""

    converged: bool
    verdict: str  # e.g. "final training loss 1.62 above ½·ln 10 = 1.15"
    findings: tuple[Finding, ...]
    course: str  # what the training loss did, e.g. "training loss 2.25 → 1.62 over 20 epochs"

    @property
    def causes(self) -> str:
        """The causes found, in order: "units died, plateau at chance" ("" if none)."""
        return ", ".join(dict.fromkeys(f.cause for f in self.findings))

    def line(self) -> str:
        """Every finding in plain words, or what the loss did when there is none."""
        if self.findings:
            return "; ".join(f.text for f in self.findings)
        return "no cause found" + (f" ({self.course})" if self.course else "")


def _points(series: Series, key: str) -> list[tuple[int, float]]:
    return sorted((int(s), float(v)) for s, v in series.get(key, {}).items())


def _layers(series: Series, statistic: str) -> dict[str, list[tuple[int, float]]]:
    suffix = f".{statistic}"
    return {key.removesuffix(suffix): _points(series, key) for key in series
            if key.endswith(suffix)}


def _listed(items: list[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def threshold_name(momentum: float | None) -> str:
    """How the stability threshold reads: 2/η, or 2(1+β)/η with heavy-ball momentum β."""
    return "2(1+β)/η" if momentum else "2/η"


def _divergence(end: RunEnd, series: Series, threshold: str) -> list[Finding]:
    if not end.diverged:
        return []
    epoch = end.epoch if end.epoch is not None else len(_points(series, "train_loss")) + 1
    where = f"at epoch {epoch}" + (f", step {end.step}" if end.step is not None else "")
    # DivergenceError's reason repeats the epoch and step: "loss became nan at epoch 2, ..."
    text = f"diverged {where}" + (f": the {end.reason.split(' at epoch')[0]}"
                                  if end.reason else "")
    bound = dict(_points(series, "sharpness_threshold"))
    measured = [(s, v) for s, v in _points(series, "sharpness") if s <= epoch and s in bound]
    if measured:
        step, value = measured[-1]
        text += f"; sharpness {value:.4g} against {threshold} = {bound[step]:.4g} at epoch {step}"
        above = [s for s, v in measured if v > bound[s]]
        if above and above[0] < step:
            text += f", above it since epoch {above[0]}"
    return [Finding(Cause.DIVERGED, epoch, text)]


def _dying(series: Series, train_loss: dict[int, float], ln_k: float, k: int,
           rules: Rules) -> list[Finding]:
    by_epoch: dict[int, list[str]] = {}
    for layer, points in _layers(series, "dead_frac").items():
        if not points:
            continue
        start = points[0][1]
        if start >= rules.dead:
            by_epoch.setdefault(points[0][0], []).append(
                f"{layer} dead from the start ({start:.3g})")
            continue
        crossed = next(((s, v) for s, v in points if v >= rules.dead), None)
        if crossed is None:
            continue
        last_step, last = points[-1]
        recovered = f", {last:.2g} by epoch {last_step}" if last < rules.dead else ""
        by_epoch.setdefault(crossed[0], []).append(
            f"{layer} {start:.2g} → {crossed[1]:.3g}{recovered}")
    findings = []
    for epoch, notes in sorted(by_epoch.items()):
        text = (f"units died at epoch {epoch} (dead fraction on the probe images: "
                f"{_listed(notes)})")
        loss = train_loss.get(epoch)
        if loss is not None and math.isfinite(loss) and loss > 2 * ln_k:
            text += f", the training loss {loss:.3g} that epoch (ln {k} = {ln_k:.2f})"
        findings.append(Finding(Cause.UNITS_DIED, epoch, text))
    return findings


def _vanishing(series: Series, train_loss: dict[int, float], ln_k: float,
               rules: Rules) -> list[Finding]:
    norms = {layer: dict(p) for layer, p in _layers(series, "grad_norm").items() if p}
    if not norms:
        return []
    start = min(min(p) for p in norms.values())
    initial = {layer: p[min(p)] for layer, p in norms.items()}

    def largest(step: int) -> float:
        values = [p[step] for p in norms.values() if step in p and math.isfinite(p[step])]
        return max(values, default=0.0)

    steps = sorted({s for p in norms.values() for s in p if s > start})
    for step in steps:
        loss = train_loss.get(step)
        if loss is None or not math.isfinite(loss) or loss <= rules.converged_loss * ln_k:
            continue  # small gradients of a run that has learned are no symptom
        gone = []
        for layer, p in norms.items():
            g, g0 = p.get(step), initial[layer]
            if g is None or not math.isfinite(g) or not g0 > 0:
                continue
            top, top0 = largest(step), largest(min(p))
            own = g * rules.vanish <= g0
            share = top > 0 and top0 > 0 and (g / top) * rules.vanish <= g0 / top0
            if own or share:
                gone.append(f"{layer} {g0:.3g} → {g:.3g}")
        if gone:
            return [Finding(Cause.GRADIENTS_VANISHED, step,
                            f"gradients vanished at epoch {step} (weight-gradient norm: "
                            f"{_listed(gone)}) while the training loss was {loss:.3g}")]
    return []


def _overfitting(series: Series, ln_k: float, rules: Rules) -> list[Finding]:
    val = [(s, v) for s, v in _points(series, "val_loss") if math.isfinite(v)]
    train = dict(_points(series, "train_loss"))
    if len(val) < 2:
        return []
    best, low = min(val, key=lambda p: p[1])
    last, high = val[-1]
    if best == last or high < (1 + rules.overfit_rise) * low:
        return []
    t_best, t_last = train.get(best), train.get(last)
    if t_best is None or t_last is None or not (
            t_last < t_best and t_last < (1 - rules.chance_loss_margin) * ln_k):
        return []
    return [Finding(Cause.OVERFITTING, best + 1,
                    f"validation loss rose after epoch {best} ({low:.3g} → {high:.3g} by "
                    f"epoch {last}) while training loss fell ({t_best:.3g} → {t_last:.3g})")]


def _plateau(series: Series, ln_k: float, k: int, rules: Rules) -> list[Finding]:
    loss, acc = dict(_points(series, "train_loss")), dict(_points(series, "train_acc"))
    epochs = sorted(set(loss) & set(acc))
    chance = 1 / k

    def at_chance(e: int) -> bool:
        # A loss within a few percent of ln K is a near-uniform guess whatever the accuracy.
        return ((1 - rules.chance_loss_margin) * ln_k <= loss[e] <= 2 * ln_k
                and (acc[e] <= chance + rules.chance_acc_margin
                     or abs(loss[e] - ln_k) <= rules.uniform_loss_margin * ln_k))

    run = next((i for i, e in enumerate(reversed(epochs)) if not at_chance(e)), len(epochs))
    if run < max(2, min(rules.plateau_epochs, len(epochs))):  # one epoch is no plateau
        return []
    onset, last = epochs[-run], epochs[-1]
    return [Finding(Cause.CHANCE_PLATEAU, onset,
                    f"a plateau at chance from epoch {onset} to {last} (training loss "
                    f"{loss[last]:.3g}, ln {k} = {ln_k:.2f}; accuracy {acc[last]:.3f}, "
                    f"chance {chance:.3g})")]


def _stopped(end: RunEnd, series: Series) -> list[Finding]:
    if end.status == "FINISHED" or end.diverged:
        return []
    epoch = end.epoch if end.epoch is not None else len(_points(series, "train_loss")) + 1
    verb = "killed" if end.status == "KILLED" else "failed"
    reason = end.reason.splitlines()[0][:120] if end.reason else end.status
    return [Finding(Cause.STOPPED, epoch, f"{verb} during epoch {epoch}: {reason}")]


def _course(train: list[tuple[int, float]], epochs: int) -> str:
    """What the training loss did, and its slope over the last `epochs` (a slow run's)."""
    if not train:
        return ""
    text = (f"training loss {train[0][1]:.3g} → {train[-1][1]:.3g} over {len(train)} "
            f"epoch{'s' * (len(train) > 1)}")
    last = train[-min(epochs, len(train)):]
    if len(last) > 1 and math.isfinite(slope := (last[-1][1] - last[0][1]) / (len(last) - 1)):
        text += f", {'falling' if slope < 0 else 'rising'} by {abs(slope):.2g} an epoch at the end"
    return text


def _converged(end: RunEnd, train: list[tuple[int, float]], ln_k: float, k: int,
               rules: Rules) -> tuple[bool, str]:
    bar = rules.converged_loss * ln_k
    if end.status != "FINISHED" or not train:
        return False, end.status if end.status != "FINISHED" else "no epoch finished"
    final = train[-1][1]
    if not math.isfinite(final) or final > bar:
        return False, f"final training loss {final:.3g} above ½·ln {k} = {bar:.3g}"
    return True, f"final training loss {final:.3g} at most ½·ln {k} = {bar:.3g}"


def diagnose_training(series: Series, end: RunEnd, num_classes: int = 10, *,
                      momentum: float | None = None, rules: Rules = Rules()) -> TrainingDiagnosis:
    """What happened during a run, from its metric series and how it ended.

    num_classes sets chance (1/K accuracy, ln K loss); momentum only names the
    stability threshold the logged `sharpness_threshold` is (threshold_name).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    ln_k = math.log(num_classes)
    train_loss = dict(train := _points(series, "train_loss"))
    found = (_dying(series, train_loss, ln_k, num_classes, rules)
             + _vanishing(series, train_loss, ln_k, rules)
             + _overfitting(series, ln_k, rules)
             + _plateau(series, ln_k, num_classes, rules))
    order = list(Cause)
    found.sort(key=lambda f: (f.epoch, order.index(f.cause)))
    if any(f.cause == Cause.UNITS_DIED and f.epoch <= g.epoch for f in found
           for g in found if g.cause == Cause.GRADIENTS_VANISHED):
        found = [Finding(f.cause, f.epoch, f.text + " (the dead units pass none back)")
                 if f.cause == Cause.GRADIENTS_VANISHED else f for f in found]
    findings = (_divergence(end, series, threshold_name(momentum)) + found
                + _stopped(end, series))
    converged, verdict = _converged(end, train, ln_k, num_classes, rules)
    return TrainingDiagnosis(converged, verdict, tuple(findings),
                             _course(train, rules.plateau_epochs))
