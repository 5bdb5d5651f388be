"""How a release is said: the words the release messages (bot.blocks.release) put in
their blocks, as mrkdwn. No Block Kit here, only strings.

    when, day, today_in           moments and dates in the service's time zone
    phase_label, PHASE_EMOJI      a phase in `/release status`, `/release list`, the App Home
    card_phase, retried           where the release is, as its card in the channel says it
    revision_state                what the Rollout does with the version (a start's answer)
    release_name, release_title   `payment-router 1.13.0`, escaped (and bold)
    mention                       a Slack user id as a mention, when it is one
    started_by, owner_label, revision_label, full_rollout_label   the facts of a release
    ticket_head, due_label, ticket_line, next_due(_label), tickets_count   its tickets
    checklist_counts              `3 ✅ · 1 ❌ · 1 ❔`

Every outside string (versions, owners, Jira keys, summaries, statuses, errors) is escaped
with `bot.core.mrkdwn`; rollbot's own links are built with `mrkdwn.link`. Dates show in the
service's time zone (`ReleaseView.timezone`); a due date computed before the full rollout
is "(provisional)".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.blocks.text import utc
from bot.core.model import ChecklistItem, Release, ReleasePhase, ReleaseView, TicketKind, TicketView
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe
from bot.core.release_commands import owner_slack_id

PHASE_LABELS: dict[ReleasePhase, str] = {
    ReleasePhase.STARTED: "Started (revision not seen yet)",
    ReleasePhase.PROGRESSING: "Progressing",
    ReleasePhase.FULLY_ROLLED_OUT: "Fully rolled out",
    ReleasePhase.ABORTED: "Aborted (clocks stopped)",
    ReleasePhase.REVERTED: "Reverted (clocks stopped)",
}
PHASE_EMOJI: dict[ReleasePhase, str] = {
    ReleasePhase.STARTED: "🚀",
    ReleasePhase.PROGRESSING: "🔄",
    ReleasePhase.FULLY_ROLLED_OUT: "✅",
    ReleasePhase.ABORTED: "🛑",
    ReleasePhase.REVERTED: "↩️",
}
KIND_LABELS: dict[TicketKind, str] = {
    TicketKind.REMOVE_RELEASE_FLAG: "Remove the release flag",
    TicketKind.CONTRACT_MIGRATION: "Contract migration",
    TicketKind.DELETE_LEGACY_CODE: "Delete the legacy code",
    TicketKind.REMOVE_EXPERIMENT_FLAG: "Remove the experiment flag",
}
CHECK_MARKS: dict[bool | None, str] = {True: "✅", False: "❌", None: "❔"}
_SOURCES = {
    "slack": "Slack",
    "slash-command": "Slack",
    "cli": "the CLI",
    "watch": "the Rollout watch",
    "drill": "a drill",
}
_USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{1,20}$")


def _zone(name: str) -> tzinfo:
    """The service's time zone; UTC when the name is not one the tz database knows."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def when(at: datetime, timezone: str = "UTC") -> str:
    """`2024-05-12 16:03 CEST`: a moment in the service's time zone (naive taken as UTC)."""
    local = utc(at).astimezone(_zone(timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or timezone}"


def day(value: date) -> str:
    """`2024-06-12 (Wed)`."""
    return f"{value.isoformat()} ({value:%a})"


def today_in(timezone: str, now: datetime) -> date:
    return utc(now).astimezone(_zone(timezone)).date()


def _relative(due: date, today: date) -> str:
    days = (due - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days > 1:
        return f"in {days} days"
    return f"⚠️ overdue by {-days} day{'' if days == -1 else 's'}"


def mention(user_id: str | None) -> str | None:
    return f"<@{user_id}>" if user_id and _USER_ID_RE.match(user_id) else None


def release_name(release: Release) -> str:
    """`payment-router 1.13.0`, escaped for mrkdwn."""
    return f"{_safe(release.service, 80)} {_safe(release.version, 128)}"


def release_title(release: Release) -> str:
    return f"*{release_name(release)}*"


def phase_label(phase: ReleasePhase) -> str:
    return PHASE_LABELS.get(phase, str(phase))


def started_by(release: Release) -> str:
    """`<@U0ONCALL> via Slack`, `ci via the CLI`, `the Rollout watch`."""
    who = mention(release.started_by) or _safe(release.started_by, 80)
    source = _SOURCES.get(release.source, _safe(release.source, 40))
    if not who or who == source:
        return source
    return f"{who} via {source}"


def owner_label(release: Release) -> str:
    """The Slack owner as a mention and the Jira assignee, or `not set`."""
    parts: list[str] = []
    slack = mention(release.owner_slack)
    if slack:
        parts.append(slack)
    if release.owner:
        as_mention = mention(owner_slack_id(release.owner))
        shown = as_mention or _safe(release.owner, 120)
        if shown not in parts:
            parts.append(shown)
    return " · ".join(parts) or "not set"


def revision_label(release: Release) -> str:
    if release.revision is None:
        return "not seen yet"
    text = f"revision {release.revision}"
    if release.previous_version:
        text += f" (replaces {_safe(release.previous_version, 128)})"
    return text


def retried(release: Release) -> bool:
    """A retry restarted the clocks after an abort: they start at the start otherwise."""
    return release.clock_started_at > release.started_at


def card_phase(release: Release, timezone: str = "UTC") -> tuple[str, str]:
    """(emoji, words): where the release is, as its card in the channel says it.

    Every phase has its words, so the card never says "started" about a release the
    cluster aborted: started (waiting for the Rollout to run the version), rolling out,
    retried and rolling out again, fully rolled out, aborted, reverted."""
    r = release
    if r.phase is ReleasePhase.STARTED:
        return "🚀", f"Started · waiting for the Rollout to run {_safe(r.version, 128)}"
    if r.phase is ReleasePhase.PROGRESSING:
        if retried(r):
            return "🔁", f"Retried {when(r.clock_started_at, timezone)} · rolling out again"
        return "🔄", "Rolling out"
    if r.phase is ReleasePhase.FULLY_ROLLED_OUT:
        at = f" {when(r.full_rollout_at, timezone)}" if r.full_rollout_at else ""
        return "✅", f"Fully rolled out{at}"
    stopped = f" {when(r.stopped_at, timezone)}" if r.stopped_at else ""
    if r.phase is ReleasePhase.ABORTED:
        return "🛑", f"Aborted{stopped} · clocks stopped until a retry"
    if r.phase is ReleasePhase.REVERTED:
        to = f" to {_safe(r.previous_version, 128)}" if r.previous_version else ""
        return "↩️", f"Reverted{to}{stopped} · clocks stopped"
    return PHASE_EMOJI.get(r.phase, ""), phase_label(r.phase)  # pragma: no cover - a new phase


def revision_state(release: Release, timezone: str = "UTC") -> str:
    """What the Rollout does with the release's version, for the answer to a start."""
    r = release
    rev = f"revision {r.revision}" if r.revision is not None else "its revision"
    if r.phase is ReleasePhase.STARTED:
        return (
            f"the Rollout does not run {_safe(r.version, 128)} yet; rollbot follows it from "
            "the moment it does"
        )
    if r.phase is ReleasePhase.PROGRESSING:
        return f"{rev} is rolling out" + (" again after a retry" if retried(r) else "")
    if r.phase is ReleasePhase.FULLY_ROLLED_OUT:
        at = f" ({when(r.full_rollout_at, timezone)})" if r.full_rollout_at else ""
        return f"{rev} is already fully rolled out{at}: the due dates count from then"
    if r.phase is ReleasePhase.ABORTED:
        return f"{rev} was aborted: the cleanup clocks are stopped until a retry"
    return f"{rev} was reverted: the cleanup clocks are stopped"


def full_rollout_label(release: Release, timezone: str) -> str:
    if release.full_rollout_at is not None:
        return when(release.full_rollout_at, timezone)
    if not release.phase.clock_running:
        stopped = f" {when(release.stopped_at, timezone)}" if release.stopped_at else ""
        return f"never: clocks stopped{stopped}"
    return "not yet (due dates provisional)"


def ticket_head(ticket: TicketView) -> str:
    """The Jira key, linked when its URL is usable, else where the ticket is."""
    if ticket.key:
        key = _safe(ticket.key, 40)
        return _link(str(ticket.url), key) if _is_web_url(ticket.url) else f"`{key}`"
    if ticket.state == "failed":
        return "❌ not filed"
    if ticket.state == "creating":
        return "⏳ creating…"
    return "⏳ pending"


def due_label(ticket: TicketView, today: date, *, clock_running: bool = True) -> str:
    """`due 2024-06-12 (Wed) (provisional), in 23 days`; no countdown once done or once
    an abort or revert stopped the release's clocks."""
    if ticket.due is None:
        return "no due date yet"
    text = f"due {day(ticket.due)}"
    if ticket.provisional:
        text += " (provisional)"
    if not ticket.done and clock_running:
        text += f", {_relative(ticket.due, today)}"
    return text


def ticket_line(
    ticket: TicketView, *, timezone: str, today: date, clock_running: bool = True
) -> str:
    """`<url|PAY-1> · Remove the release flag … — due 2024-06-12 (Wed) (provisional), …`."""
    summary = _safe(ticket.summary, 300) or KIND_LABELS.get(ticket.kind, str(ticket.kind))
    details = []
    if ticket.state == "failed":
        details.append(f"failed: {_safe(ticket.error or 'Jira refused it', 400)}")
    details.append(due_label(ticket, today, clock_running=clock_running))
    if ticket.not_before is not None:
        details.append(f"not before {when(ticket.not_before, timezone)}")
    if ticket.status:
        details.append(f"Jira: {_safe(ticket.status, 60)}")
    if ticket.done:
        details.append("done ✓")
    return f"• {ticket_head(ticket)} · {summary}\n      " + " · ".join(details)


def next_due(view: ReleaseView) -> TicketView | None:
    """The open ticket due first (None when none is open or dated)."""
    open_ = [t for t in view.tickets if not t.done and t.due is not None]
    return min(open_, key=lambda t: (t.due or date.max, t.kind.value), default=None)


def next_due_label(view: ReleaseView, now: datetime) -> str:
    ticket = next_due(view)
    if ticket is None:
        return "nothing due" if view.tickets else "no tickets yet"
    label = KIND_LABELS.get(ticket.kind, str(ticket.kind))
    today = today_in(view.timezone, now)
    return f"{label} {due_label(ticket, today, clock_running=view.release.phase.clock_running)}"


def tickets_count(view: ReleaseView) -> str:
    """`4 tickets: 3 filed (1 done) · 1 pending`."""
    filed = sum(1 for t in view.tickets if t.key)
    done = sum(1 for t in view.tickets if t.done)
    failed = sum(1 for t in view.tickets if not t.key and t.state == "failed")
    waiting = len(view.tickets) - filed - failed
    n = len(view.tickets)
    parts = [f"{filed} filed" + (f" ({done} done)" if done else "")]
    if waiting:
        parts.append(f"{waiting} pending")
    if failed:
        parts.append(f"{failed} failed")
    return f"{n} ticket{'' if n == 1 else 's'}: " + " · ".join(parts)


def checklist_counts(items: Sequence[ChecklistItem]) -> str:
    """`3 ✅ · 1 ❌ · 1 ❔`."""
    marks: tuple[bool | None, ...] = (True, False, None)
    counts = {ok: sum(1 for i in items if i.ok is ok) for ok in marks}
    return " · ".join(f"{counts[ok]} {CHECK_MARKS[ok]}" for ok in marks if counts[ok])
