"""Every Slack message about releases, as pure Block Kit builders (no I/O).

Built with the typed `slack_sdk.models.blocks` classes like the incident card; every outside
string (Jira keys, summaries, statuses and errors, versions, owners, variants, a checklist
item's evidence) is escaped with `bot.core.mrkdwn`, which also clips and builds the links.
rollbot's own links (a ticket's Jira URL, a checklist item's `links`, the thread) are built
here with `mrkdwn.link` around the escaped label, so they render as links.

    release_started(view)           the release card: the thread's root in the service channel,
                                    in the words of the release's phase (posted once, then
                                    updated in place by bot.releases.card)
    release_checklist(view)         the checklist, posted in that thread
    release_status(views, now)      `/release status SERVICE` (ephemeral)
    release_list(views, now)        `/release list` (ephemeral)
    home_view(views, now)           the App Home tab (`views.publish`)
    release_help(command)           `/release help`
    start_reply, winner_reply,
    unavailable_text                the one-line answers of the `/release` listener

Builders of messages return `(text, blocks)`: the notification text and the blocks.
Slack's limits hold whatever the input: a message has at most 50 blocks and the home tab
100; a section's text at most 3000 characters, at most 10 fields of 2000; a header 150.
What does not fit ends in "…and N more". Dates show in the service's time zone
(`ReleaseView.timezone`); a due date computed before the full rollout is "(provisional)".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.text import clock, utc
from bot.core.model import (
    ChecklistItem,
    Release,
    ReleasePhase,
    ReleaseView,
    TicketKind,
    TicketView,
)
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe
from bot.core.release_commands import owner_slack_id
from bot.core.release_commands import usage as release_usage

MAX_MESSAGE_BLOCKS = 50
MAX_HOME_BLOCKS = 100
SECTION_TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
HEADER_LIMIT = 150

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


# ── small helpers ────────────────────────────────────────────────────────────


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


def _mention(user_id: str | None) -> str | None:
    return f"<@{user_id}>" if user_id and _USER_ID_RE.match(user_id) else None


def _name(release: Release) -> str:
    """`payment-router 1.13.0`, escaped for mrkdwn."""
    return f"{_safe(release.service, 80)} {_safe(release.version, 128)}"


def _title(release: Release) -> str:
    return f"*{_name(release)}*"


def phase_label(phase: ReleasePhase) -> str:
    return PHASE_LABELS.get(phase, str(phase))


def started_by(release: Release) -> str:
    """`<@U0ONCALL> via Slack`, `ci via the CLI`, `the Rollout watch`."""
    who = _mention(release.started_by) or _safe(release.started_by, 80)
    source = _SOURCES.get(release.source, _safe(release.source, 40))
    if not who or who == source:
        return source
    return f"{who} via {source}"


def owner_label(release: Release) -> str:
    """The Slack owner as a mention and the Jira assignee, or `not set`."""
    parts: list[str] = []
    slack = _mention(release.owner_slack)
    if slack:
        parts.append(slack)
    if release.owner:
        as_mention = _mention(owner_slack_id(release.owner))
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


def _thread(view: ReleaseView, label: str = "release thread") -> str | None:
    return _link(str(view.thread_link), label) if _is_web_url(view.thread_link) else None


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


def _more(n: int, what: str = "more") -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=f"…and {n:,} {what}")])


def _packed(lines: Sequence[str], *, max_blocks: int, what: str = "more") -> list[Block]:
    """`lines` in as few sections as fit (text ≤ 3000 each) and at most `max_blocks` blocks;
    when they do not all fit, the last block says how many lines were left out."""
    chunks: list[list[str]] = []
    size = 0
    for raw in lines:
        line = _clip(raw, SECTION_TEXT_LIMIT)
        if chunks and size + 1 + len(line) <= SECTION_TEXT_LIMIT:
            chunks[-1].append(line)
            size += 1 + len(line)
        else:
            chunks.append([line])
            size = len(line)
    kept = chunks if len(chunks) <= max_blocks else chunks[: max(0, max_blocks - 1)]
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text="\n".join(c))) for c in kept]
    left = len(lines) - sum(len(c) for c in kept)
    if left and max_blocks > 0:
        blocks.append(_more(left, what))
    return blocks


def _fields(pairs: Sequence[tuple[str, str]]) -> list[MarkdownTextObject]:
    return [
        MarkdownTextObject(text=_clip(f"*{k}*\n{v}", FIELD_LIMIT)) for k, v in pairs[:MAX_FIELDS]
    ]


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=_clip(text, SECTION_TEXT_LIMIT))])


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_clip(text, SECTION_TEXT_LIMIT)))


def _links(pairs: Sequence[tuple[str, str]], budget: int = 1500) -> str:
    """rollbot's links, `label` escaped inside `<url|label>` (a URL Slack would refuse: the
    label alone), as many as fit in `budget` characters (a link is never cut), then
    "…and N more"."""
    shown: list[str] = []
    size = 0
    for label, url in pairs:
        name = _safe(label, 80)
        piece = _link(url, name) if _is_web_url(url) else name
        if len(piece) > budget:
            piece = name
        if shown and size + 2 + len(piece) > budget:
            break
        shown.append(piece)
        size += len(piece) + 2
    left = len(pairs) - len(shown)
    return ", ".join(shown) + (f" …and {left:,} more" if left else "")


def _dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


# ── the release thread ───────────────────────────────────────────────────────


def release_started(view: ReleaseView) -> tuple[str, list[dict[str, Any]]]:
    """The release card: the root of the release thread in the service's channel, saying
    where the release is (`card_phase`). Posted when the release starts, then updated in
    place as it moves; what it shows depends on the release alone (no clock, no tickets),
    so the same release renders the same card and an update is sent only for a change."""
    r = view.release
    emoji, words = card_phase(r, view.timezone)
    pairs = [
        ("Phase", f"{emoji} {words}"),
        ("Started by", started_by(r)),
        ("Owner", owner_label(r)),
        ("Revision", revision_label(r)),
    ]
    if _is_web_url(view.rollout_link):
        pairs.append(("Rollout", _link(str(view.rollout_link), "open")))
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=_clip(f"{emoji} {r.service} {r.version}", HEADER_LIMIT), emoji=True
            )
        ),
        SectionBlock(fields=_fields(pairs)),
        _context(
            f"Started {when(r.started_at, view.timezone)} · the cleanup tickets and the "
            f"checklist follow in this thread · `{_safe(r.id, 200)}`"
        ),
    ]
    text = _clip(
        f"{emoji} Release {_name(r)}: {words} (started by {started_by(r)})", SECTION_TEXT_LIMIT
    )
    return text, _dicts(blocks)


def release_checklist(view: ReleaseView) -> tuple[str, list[dict[str, Any]]]:
    """The checklist, in the release thread: ✅ ok, ❌ not ok, ❔ could not be checked."""
    r = view.release
    items = view.checklist
    counts = checklist_counts(items)
    blocks: list[Block] = [_section(f"*Release checklist* · {_name(r)}")]
    if not items:
        blocks.append(_context("Nothing to check for this release."))
    else:
        lines = []
        for item in items:
            line = f"{CHECK_MARKS[item.ok]} *{_safe(item.name, 200)}*"
            details = [_safe(item.evidence, 800)] if item.evidence else []
            if item.links:
                details.append(_links(item.links))
            if details:
                line += " — " + " · ".join(details)
            lines.append(line)
        blocks.extend(_packed(lines, max_blocks=MAX_MESSAGE_BLOCKS - 2, what="more checks"))
        blocks.append(_context(counts))
    text = f"Release checklist for {_name(r)}: {counts or 'nothing to check'}"
    return _clip(text, SECTION_TEXT_LIMIT), _dicts(blocks)


# ── /release status, /release list ───────────────────────────────────────────


def _release_blocks(view: ReleaseView, now: datetime, *, max_blocks: int) -> list[Block]:
    """One release in detail: title, facts, its tickets; at most `max_blocks` blocks."""
    r = view.release
    tz = view.timezone
    title = f"{_title(r)} · {PHASE_EMOJI.get(r.phase, '')} {phase_label(r.phase)}"
    thread = _thread(view)
    if thread:
        title += f" · {thread}"
    pairs = [
        ("Full rollout", full_rollout_label(r, tz)),
        ("Started", f"{when(r.started_at, tz)}\nby {started_by(r)}"),
        ("Owner", owner_label(r)),
        ("Revision", revision_label(r)),
    ]
    if r.winner:
        won = f" on {when(r.winner_at, tz)}" if r.winner_at else ""
        pairs.append(("Experiment winner", f"`{_safe(r.winner, 64)}`{won}"))
    if _is_web_url(view.rollout_link):
        pairs.append(("Rollout", _link(str(view.rollout_link), "open")))
    blocks: list[Block] = [_section(title), SectionBlock(fields=_fields(pairs))]
    today = today_in(tz, now)
    if view.tickets:
        running = r.phase.clock_running
        lines = [
            ticket_line(t, timezone=tz, today=today, clock_running=running) for t in view.tickets
        ]
        room = max(1, max_blocks - len(blocks) - (1 if view.checklist else 0))
        blocks.extend(_packed(lines, max_blocks=room, what="more tickets"))
    else:
        blocks.append(_context("No cleanup tickets yet."))
    if view.checklist and len(blocks) < max_blocks:
        blocks.append(_context(f"Checklist: {checklist_counts(view.checklist)}"))
    return blocks[:max_blocks]


def release_status(
    views: Sequence[ReleaseView], now: datetime, *, service: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """`/release status SERVICE`: its releases, newest first, each with its tickets."""
    if not views:
        name = _safe(service or "this service", 80)
        text = f"No release of `{name}` recorded yet."
        hint = f" Start one with `/release start {name} VERSION`." if service else ""
        return text, _dicts([_section(text + hint)])
    blocks: list[Block] = []
    for i, view in enumerate(views):
        left = len(views) - i
        room = MAX_MESSAGE_BLOCKS - len(blocks) - (1 if i else 0) - (1 if left > 1 else 0)
        if room < 3:
            blocks.append(_more(left, "more releases" if left > 1 else "more release"))
            break
        if i:
            blocks.append(DividerBlock())
        blocks.extend(_release_blocks(view, now, max_blocks=min(room, 20)))
    newest = views[0].release
    text = (
        f"{_name(newest)}: {phase_label(newest.phase)}; full rollout "
        f"{full_rollout_label(newest, views[0].timezone)}; {tickets_count(views[0])}"
    )
    return _clip(text, SECTION_TEXT_LIMIT), _dicts(blocks)


def _list_line(view: ReleaseView, now: datetime) -> str:
    r = view.release
    head = f"{PHASE_EMOJI.get(r.phase, '')} {_title(r)} · {phase_label(r.phase)}"
    thread = _thread(view, "thread")
    if thread:
        head += f" · {thread}"
    return (
        f"{head}\nNext due: {next_due_label(view, now)}\n"
        f"{tickets_count(view)} · full rollout {full_rollout_label(r, view.timezone)}"
    )


def release_list(views: Sequence[ReleaseView], now: datetime) -> tuple[str, list[dict[str, Any]]]:
    """`/release list`: one section per active release with its phase and next due date."""
    if not views:
        text = "No releases in flight."
        hint = " Start one with `/release start SERVICE VERSION`."
        return text, _dicts([_section(text + hint)])
    n = len(views)
    blocks: list[Block] = [_section(f"*Releases in flight* ({n:,})")]
    room = MAX_MESSAGE_BLOCKS - 1
    shown = views if n <= room else views[: room - 1]
    blocks.extend(_section(_list_line(v, now)) for v in shown)
    if len(shown) < n:
        blocks.append(_more(n - len(shown), "more releases"))
    names = ", ".join(_name(v.release) for v in views[:5])
    text = f"{n:,} release{'' if n == 1 else 's'} in flight: {names}" + ("…" if n > 5 else "")
    return _clip(text, SECTION_TEXT_LIMIT), _dicts(blocks)


# ── the App Home ─────────────────────────────────────────────────────────────


def home_view(
    views: Sequence[ReleaseView], now: datetime, *, note: str | None = None
) -> dict[str, Any]:
    """The App Home tab: the releases in flight with their tickets and due dates."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text="Releases in flight", emoji=True)),
        _context(
            f"Updated {clock(now)} · `/release list` · `/release status SERVICE` · `/release help`"
        ),
    ]
    if note:
        blocks.append(_section(f":warning: {_safe(note, 2500)}"))
    if not views:
        blocks.append(
            _section(
                "Nothing in flight right now. :sunny:\nStart a release with "
                "`/release start SERVICE VERSION`, or let rollbot start one when it sees a "
                "new revision roll out; its cleanup tickets and their due dates show up here."
            )
        )
        return {"type": "home", "blocks": _dicts(blocks)}
    for i, view in enumerate(views):
        left = len(views) - i
        room = MAX_HOME_BLOCKS - len(blocks) - 1 - (1 if left > 1 else 0)
        if room < 3:
            blocks.append(_more(left, "more releases: `/release list`"))
            break
        blocks.append(DividerBlock())
        blocks.extend(_release_blocks(view, now, max_blocks=min(room, 8)))
    return {"type": "home", "blocks": _dicts(blocks)}


# ── help and the listener's answers ──────────────────────────────────────────

_HELP = [
    (
        "start SERVICE VERSION [@owner|email]",
        "record a release and file its cleanup tickets in a thread in the service's channel "
        "(release flag: 30 days after full rollout; contract migration: not before 72 h "
        "after; legacy code: with the flag; experiment flag: 14 days after a winner)",
    ),
    ("status SERVICE", "the service's releases, their phase and every ticket with its due date"),
    ("list", "every release in flight and what is due next"),
    (
        "winner SERVICE VARIANT",
        "declare the experiment's winner: dates the experiment flag's removal",
    ),
    ("help", "this message"),
]


def release_help(command: str = "/release") -> tuple[str, list[dict[str, Any]]]:
    lines = "\n".join(f"• `{command} {shape}`: {what}" for shape, what in _HELP)
    blocks: list[Block] = [
        _section(f"*{release_usage(command)}*"),
        _section(lines),
        _context(
            "Due dates are provisional until the Rollout is fully rolled out; an abort or a "
            "revert stops the clocks. The App Home tab lists every release in flight."
        ),
    ]
    return release_usage(command), _dicts(blocks)


def unavailable_text(command: str = "/release") -> str:
    return (
        f":warning: Release tracking is not enabled on this rollbot, so `{command}` can only "
        f"show its help (`{command} help`). Ask the rollbot owners to configure Jira and "
        "releases."
    )


def start_reply(created: bool, view: ReleaseView) -> str:
    """What `/release start` answers once the release desk has recorded (or found) it: the
    state of the release's revision first (`revision_state`), then where to follow it."""
    r = view.release
    thread = _thread(view, "open the thread")
    if created:
        text = (
            f":rocket: Release {_name(r)} started: {revision_state(r, view.timezone)}. Its "
            "cleanup tickets and checklist are in the release thread"
        )
        return text + (f": {thread}" if thread else ".")
    text = (
        f":information_source: {_name(r)} was already started {when(r.started_at, view.timezone)} "
        f"by {started_by(r)} (phase {phase_label(r.phase)}); nothing done."
    )
    if r.phase is ReleasePhase.ABORTED:
        text += " Retry the rollout to restart its clocks, or start the next version."
    return text + (f" {thread}" if thread else "")


def winner_reply(view: ReleaseView, now: datetime, variant: str | None = None) -> str:
    """What `/release winner` answers: the winner and the experiment ticket's due date."""
    r = view.release
    winner = _safe(r.winner or variant or "?", 64)
    head = f":trophy: `{winner}` is the winner of {_name(r)}'s experiment"
    ticket = next((t for t in view.tickets if t.kind is TicketKind.REMOVE_EXPERIMENT_FLAG), None)
    if ticket is None:
        return head + "; the service has no experiment flag, so there is no removal ticket to date."
    today = today_in(view.timezone, now)
    return (
        f"{head}. The experiment flag's removal ticket {ticket_head(ticket)} is now "
        f"{due_label(ticket, today)}."
    )
