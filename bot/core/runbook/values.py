"""The runbook linter's values: a problem found, the playbook's tiers and their windows.

What every rule module shares: `RunbookProblem` (what the linter reports), `KeyPath` (a
front-matter key path, ``("tiers", 0, "time")``) and `PLAYBOOK`, the three tiers a runbook
must follow, with the lookups the front-matter and the body rules both make on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RunbookProblem:
    """One thing wrong with a runbook, at a line of its file (1-based)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class PlaybookTier:
    """One tier of the playbook and the time window it promises, in seconds."""

    tier: int
    name: str
    low_seconds: float
    high_seconds: float
    window: str  # as the playbook writes it


PLAYBOOK: tuple[PlaybookTier, ...] = (
    PlaybookTier(1, "abort", 0, 60, "0–60 s"),
    PlaybookTier(2, "circuit breaker", 0, 10, "0–10 s"),
    PlaybookTier(3, "full revert", 30 * 60, 120 * 60, "30–120 min"),
)
"""Tier 1 automatic/abort, Tier 2 circuit breaker, Tier 3 full revert (Git)."""


def playbook_tier(number: Any) -> PlaybookTier | None:
    """The playbook's tier `number` (an int, not a bool), else None."""
    if isinstance(number, bool) or not isinstance(number, int):
        return None
    return next((spec for spec in PLAYBOOK if spec.tier == number), None)


def inside(window: tuple[float, float], spec: PlaybookTier) -> bool:
    """Whether `window` (low, high seconds) lies within the tier's window."""
    low, high = window
    return spec.low_seconds <= low and high <= spec.high_seconds
