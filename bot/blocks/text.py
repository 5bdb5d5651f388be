"""Small text helpers shared by the Block Kit builders of this package (the incident card,
its replies and the release card): times as Slack shows them and the verbs of done actions."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["PAST_TENSE", "clock", "duration_minutes", "humanise_age", "utc"]

# What was done, by action name (`ActionRecord.action`, `Outcome.action.value`).
PAST_TENSE: dict[str, str] = {
    "abort": "aborted",
    "retry": "retried",
    "promote": "promoted",
    "promote-full": "fully promoted",
    "pause": "paused",
    "circuit-open": "circuit opened",
    "circuit-close": "circuit closed",
    "revert-started": "revert recorded",
}


def clock(at: datetime) -> str:
    """`14:03:12 UTC` (naive datetimes are taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%H:%M:%S UTC")


def humanise_age(start: datetime | None, now: datetime) -> str:
    """`45s`, `12m 3s`, `5h 2m`, `3d 4h`; `-` when unknown."""
    if start is None:
        return "-"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    seconds = max(0, int((now - start).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def utc(at: datetime) -> datetime:
    """`at`, naive taken as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def duration_minutes(start: datetime, end: datetime) -> str:
    """`under 1 min`, `6 min`, `2 h 5 min` (whole minutes, rounded down)."""
    minutes = max(0, int((utc(end) - utc(start)).total_seconds()) // 60)
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
