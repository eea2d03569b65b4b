"""A check's outcome, and how the outcomes of all checks add up to a verdict and a report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """A check's or a whole diagnosis's verdict; its value is how tags and reports spell it."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL


@dataclass
class Check:
    """One diagnostic: its verdict, the measured value, and what it most likely means."""

    name: str
    status: Status
    value: float
    cause: str

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.value:.4g} - {self.cause}"


@dataclass(frozen=True)
class Verdict:
    """What the checks add up to: fail if any check fails, else warn if any warns, else
    pass; and the most likely cause, the first check's of that status ("" when healthy)."""

    status: Status
    cause: str

    @classmethod
    def of(cls, checks: list[Check]) -> Verdict:
        statuses = {c.status for c in checks}
        status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
        causes = [c.cause for c in checks if c.status == status and status != PASS]
        return cls(status, causes[0] if causes else "")


def verdict(checks: list[Check]) -> Status:
    """fail if any check fails, else warn if any warns, else pass."""
    return Verdict.of(checks).status


def health_report(checks: list[Check]) -> str:
    """A short plain-text report: the verdict, then one line per check."""
    overall = Verdict.of(checks)
    head = f"health: {overall.status.upper()}" + (
        f" - most likely: {overall.cause}" if overall.cause else "")
    return "\n".join([head, *(c.line() for c in checks)])
