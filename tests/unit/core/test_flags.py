"""bot.core.flags: the removal note of each flag of the hierarchy."""

from __future__ import annotations

from datetime import date

import pytest

from bot.core.flags import FLAG_TYPES, ROLES, FlagInfo, FlagRole, removal_note

TODAY = date(2026, 11, 22)


def info(role: FlagRole, remove_after: date | None) -> FlagInfo:
    return FlagInfo(
        role=role,
        key=f"payments.{role}",
        type=FLAG_TYPES[role],
        created=date(2026, 10, 1),
        remove_after=remove_after,
    )


@pytest.mark.parametrize(
    ("role", "remove_after", "note"),
    [
        ("release", date(2026, 12, 21), "remove by 2026-12-21 (in 29 days)"),
        ("release", date(2026, 11, 23), "remove by 2026-11-23 (in 1 day)"),
        ("release", TODAY, "remove by 2026-11-22 (today)"),
        ("release", date(2026, 11, 21), "overdue by 1 day (was due 2026-11-21)"),
        ("experiment", date(2026, 11, 19), "overdue by 3 days (was due 2026-11-19)"),
        ("experiment", None, "no removal date set"),
        ("release", None, "no removal date set"),
        ("circuit", None, "long-lived (ops toggle)"),
        # a date written for an ops toggle is honoured: someone planned to retire it
        ("circuit", date(2027, 1, 1), "remove by 2027-01-01 (in 40 days)"),
    ],
)
def test_removal_note(role: FlagRole, remove_after: date | None, note: str) -> None:
    assert removal_note(info(role, remove_after), TODAY) == note


def test_every_role_has_a_type() -> None:
    assert ROLES == ("release", "experiment", "circuit")
    assert [FLAG_TYPES[r] for r in ROLES] == [
        "release toggle",
        "experiment toggle",
        "ops toggle (circuit breaker)",
    ]
