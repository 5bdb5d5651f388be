"""How release messages list tickets and say durations: ticket records in the plan's order,
Jira keys as mrkdwn links, seconds in words. Shared by filing, the checklist and the
follow-ups, which all speak in the release thread."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core import mrkdwn
from bot.core.model import TicketKind
from bot.core.ports import TicketRecord

_ORDER = {k.value: i for i, k in enumerate(TicketKind)}


def in_order(records: Sequence[TicketRecord]) -> list[TicketRecord]:
    """The records in the order of `TicketKind` (the plan's), unknown kinds last."""
    return sorted(records, key=lambda r: _ORDER.get(r.kind, len(_ORDER)))


def link(rec: TicketRecord) -> str:
    """The record's Jira key (or its kind, when not filed) as mrkdwn, linked when it can be."""
    return link_key(rec.key or rec.kind, rec.url)


def link_key(key: str | None, url: str | None) -> str:
    """A Jira key as mrkdwn, linked to its URL when that is a web URL (both are Jira's)."""
    shown = mrkdwn.safe(key, 40) if key else "?"
    if key and url and mrkdwn.is_web_url(url):
        return mrkdwn.link(url, shown)
    return shown


def human(seconds: float) -> str:
    """A duration as people read it: "42 s", "12 min", "3.5 h", "2.0 days"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
