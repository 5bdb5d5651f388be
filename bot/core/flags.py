"""The release's three-flag hierarchy: what each flag is, and when it should go.

A service's catalog entry names up to three flags (docs: "Design the Flag Hierarchy"):

- release toggle: the new code path on or off; removed 30 days after 100 %;
- experiment toggle: an A/B test; removed 14 days after a winner is declared;
- ops toggle (circuit breaker): true sends everything to the legacy path; long-lived,
  owned by the on-call rotation. Tier 2 flips it.

Pure: no I/O, no clock (``today`` is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from bot.core.model import FlagState

FlagRole = Literal["release", "experiment", "circuit"]

ROLES: tuple[FlagRole, ...] = ("release", "experiment", "circuit")
"""The hierarchy, in the order it is shown."""

FLAG_TYPES: dict[FlagRole, str] = {
    "release": "release toggle",
    "experiment": "experiment toggle",
    "circuit": "ops toggle (circuit breaker)",
}
"""The flag type each role implies."""


@dataclass(frozen=True, slots=True)
class FlagInfo:
    """One flag of a service's hierarchy, as the catalog describes it."""

    role: FlagRole
    key: str  # payments.new-router.enabled
    type: str  # release toggle | experiment toggle | ops toggle (circuit breaker)
    owner: str | None = None
    description: str | None = None
    created: date | None = None
    remove_after: date | None = None


@dataclass(frozen=True, slots=True)
class FlagStatus:
    """A flag with its live state (or why it is unknown) and its removal note."""

    info: FlagInfo
    state: FlagState | str  # str: why the state is unknown (no provider, not found, …)
    removal: str  # removal_note(info, today)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def removal_note(info: FlagInfo, today: date) -> str:
    """When the flag should be removed, relative to ``today``.

    A date in the catalog wins; without one an ops toggle is long-lived by design, any
    other flag is missing its cleanup date.
    """
    due = info.remove_after
    if due is None:
        if info.role == "circuit":
            return "long-lived (ops toggle)"
        return "no removal date set"
    left = (due - today).days
    if left > 0:
        return f"remove by {due.isoformat()} (in {_days(left)})"
    if left == 0:
        return f"remove by {due.isoformat()} (today)"
    return f"overdue by {_days(-left)} (was due {due.isoformat()})"
