"""A check's outcome, and how the outcomes of all checks add up to a verdict and a report."""

from __future__ import annotations

from dataclasses import dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass
class Check:
    """One diagnostic: its verdict, the measured value, and what it most likely means."""

    name: str
    status: str  # pass | warn | fail
    value: float
    cause: str

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.value:.4g} - {self.cause}"


def verdict(checks: list[Check]) -> str:
    """fail if any check fails, else warn if any warns, else pass."""
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def health_report(checks: list[Check]) -> str:
    """A short plain-text report: the verdict, then one line per check."""
    overall = verdict(checks)
    causes = [c.cause for c in checks if c.status == overall and overall != PASS]
    head = f"health: {overall.upper()}" + (f" - most likely: {causes[0]}" if causes else "")
    return "\n".join([head, *(c.line() for c in checks)])
