"""How busy the machine is while a benchmark measures, and whether a ratio measured in
that time means anything.

The load average (os.getloadavg) lags by a minute and counts the benchmark itself, so
it is read once, before any measurement. During the measurement, what other processes
took is the machine's busy CPU time (/proc/stat, steal included: a hypervisor's other
guests) less this process's and its finished children's own.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

# A ratio is shown only when its rounds agree within this share of their median (both
# ways, so ±7%), and others took at most this share of the cores meanwhile.
MAX_SPREAD = 0.14
MAX_OTHERS_SHARE = 0.15
# Without /proc/stat: the load average before the measurement, as a share of the cores.
MAX_LOAD_SHARE = 0.5


def machine_busy_seconds(stat: str | None = None) -> float | None:
    """CPU seconds all cores have been busy since boot, from the text of /proc/stat (read
    when not given): user, nice, system, irq, softirq and steal; None where unreadable."""
    try:
        text = Path("/proc/stat").read_text() if stat is None else stat
        fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@dataclass(frozen=True)
class Load:
    """The machine's load around a measurement."""

    cores: int
    load_average: float  # over the minute before the measurement began
    others_cores: float | None  # cores other processes kept busy during it, on average


class LoadMeter:
    """Reads the load average at once, then `stop()` gives the Load up to that moment."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.busy, self.own = machine_busy_seconds(), own_seconds()
        self.load_average = os.getloadavg()[0]

    def stop(self) -> Load:
        wall = time.perf_counter() - self.started
        busy = machine_busy_seconds()
        others = None
        if busy is not None and self.busy is not None and wall > 0:
            others = max(0.0, (busy - self.busy) - (own_seconds() - self.own)) / wall
        return Load(cores(), self.load_average, others)


def spread(values: list[float]) -> float:
    """(max - min) / median of the values."""
    return (max(values) - min(values)) / statistics.median(values)


def untrusted(ratios: list[float], load: Load) -> str | None:
    """Why the ratios of several rounds make no figure worth printing (a busy machine, or
    rounds that disagree, or a single round); None when their median can be trusted."""
    if load.others_cores is not None and load.others_cores > MAX_OTHERS_SHARE * load.cores:
        return (f"the machine was busy: other processes kept {load.others_cores:.1f} of "
                f"{load.cores} cores busy during the rounds")
    if load.others_cores is None and load.load_average > MAX_LOAD_SHARE * load.cores:
        return f"the machine was busy: load average {load.load_average:.1f} on {load.cores} cores"
    if len(ratios) < 2:
        return "one round has no spread to judge it by"
    judged = judged_rounds(ratios)
    if spread(judged) > MAX_SPREAD:
        which = "the rounds" if len(judged) == len(ratios) else "the middle rounds"
        return (f"{which} disagree: {min(judged):.2f} to {max(judged):.2f}, "
                f"{spread(judged):.0%} of their median (at most {MAX_SPREAD:.0%})")
    return None


def judged_rounds(ratios: list[float]) -> list[float]:
    """The rounds whose spread decides whether their median is shown: all of them, or from
    5 rounds on all but the lowest and the highest. One round disturbed by a passing
    process cannot move a median of five far, but it would stretch their range."""
    return sorted(ratios)[1:-1] if len(ratios) >= 5 else list(ratios)
