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
    release_help(command)           `/release help`, who may use each verb from the policy's
                                    table (`bot.core.policy.who_may`)
    start_reply, winner_reply,
    unavailable_text                the one-line answers of the `/release` listener

The words they are made of (a phase, a moment in the service's time zone, an owner, a
ticket's due date) are bot.blocks.release_words; `PHASE_LABELS` and `when` are re-exported.

Builders of messages return `(text, blocks)`: the notification text and the blocks.
Slack's limits hold whatever the input: a message has at most 50 blocks and the home tab
100; a section's text at most 3000 characters, at most 10 fields of 2000; a header 150.
What does not fit ends in "…and N more". Dates show in the service's time zone
(`ReleaseView.timezone`); a due date computed before the full rollout is "(provisional)".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.release_words import (
    CHECK_MARKS,
    PHASE_EMOJI,
    PHASE_LABELS,
    card_phase,
    checklist_counts,
    due_label,
    full_rollout_label,
    next_due_label,
    owner_label,
    phase_label,
    release_name,
    release_title,
    revision_label,
    revision_state,
    started_by,
    ticket_head,
    ticket_line,
    tickets_count,
    today_in,
    when,
)
from bot.blocks.text import clock
from bot.core import policy
from bot.core.model import ReleasePhase, ReleaseView, TicketKind
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe
from bot.core.release_commands import usage as release_usage

# The builders, Slack's limits, and the words tests and callers read from here.
__all__ = [
    "FIELD_LIMIT",
    "HEADER_LIMIT",
    "MAX_FIELDS",
    "MAX_HOME_BLOCKS",
    "MAX_MESSAGE_BLOCKS",
    "PHASE_LABELS",
    "SECTION_TEXT_LIMIT",
    "home_view",
    "release_checklist",
    "release_help",
    "release_list",
    "release_started",
    "release_status",
    "start_reply",
    "unavailable_text",
    "when",
    "winner_reply",
]

MAX_MESSAGE_BLOCKS = 50
MAX_HOME_BLOCKS = 100
SECTION_TEXT_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
HEADER_LIMIT = 150


# ── Block Kit helpers ────────────────────────────────────────────────────────


def _thread(view: ReleaseView, label: str = "release thread") -> str | None:
    return _link(str(view.thread_link), label) if _is_web_url(view.thread_link) else None


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
        f"{emoji} Release {release_name(r)}: {words} (started by {started_by(r)})",
        SECTION_TEXT_LIMIT,
    )
    return text, _dicts(blocks)


def release_checklist(view: ReleaseView) -> tuple[str, list[dict[str, Any]]]:
    """The checklist, in the release thread: ✅ ok, ❌ not ok, ❔ could not be checked."""
    r = view.release
    items = view.checklist
    counts = checklist_counts(items)
    blocks: list[Block] = [_section(f"*Release checklist* · {release_name(r)}")]
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
    text = f"Release checklist for {release_name(r)}: {counts or 'nothing to check'}"
    return _clip(text, SECTION_TEXT_LIMIT), _dicts(blocks)


# ── /release status, /release list ───────────────────────────────────────────


def _release_blocks(view: ReleaseView, now: datetime, *, max_blocks: int) -> list[Block]:
    """One release in detail: title, facts, its tickets; at most `max_blocks` blocks."""
    r = view.release
    tz = view.timezone
    title = f"{release_title(r)} · {PHASE_EMOJI.get(r.phase, '')} {phase_label(r.phase)}"
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
        f"{release_name(newest)}: {phase_label(newest.phase)}; full rollout "
        f"{full_rollout_label(newest, views[0].timezone)}; {tickets_count(views[0])}"
    )
    return _clip(text, SECTION_TEXT_LIMIT), _dicts(blocks)


def _list_line(view: ReleaseView, now: datetime) -> str:
    r = view.release
    head = f"{PHASE_EMOJI.get(r.phase, '')} {release_title(r)} · {phase_label(r.phase)}"
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
    names = ", ".join(release_name(v.release) for v in views[:5])
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

# `/release help`: each verb's syntax, its policy verb and what it does. Who may use it is
# not written here: it is `policy.who_may` of the verb (the policy's one table), so a change
# to the policy changes the help.
_HELP: tuple[tuple[str, str, str], ...] = (
    (
        "start SERVICE VERSION [@owner|email]",
        policy.RELEASE_START,
        "record a release and file its cleanup tickets in a thread in the service's channel "
        "(release flag: 30 days after full rollout; contract migration: not before 72 h "
        "after; legacy code: with the flag; experiment flag: 14 days after a winner)",
    ),
    (
        "status SERVICE",
        "release.status",
        "the service's releases, their phase and every ticket with its due date",
    ),
    ("list", "release.list", "every release in flight and what is due next"),
    (
        "winner SERVICE VARIANT",
        policy.RELEASE_WINNER,
        "declare the experiment's winner: dates the experiment flag's removal",
    ),
    ("help", "release.help", "this message"),
)


def release_help(command: str = "/release") -> tuple[str, list[dict[str, Any]]]:
    """`/release help`: every verb, grouped under who may use it in the policy's own words
    (`bot.core.policy.who_may`), the groups in the order their first verb is listed."""
    groups: dict[str, list[str]] = {}
    for shape, verb, what in _HELP:
        groups.setdefault(policy.who_may(verb), []).append(f"• `{command} {shape}`: {what}")
    blocks: list[Block] = [_section(f"*{release_usage(command)}*")]
    blocks += [_section("\n".join([f"*Who may:* {who}", *lines])) for who, lines in groups.items()]
    blocks.append(
        _context(
            "Due dates are provisional until the Rollout is fully rolled out; an abort or a "
            "revert stops the clocks. The App Home tab lists every release in flight."
        )
    )
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
            f":rocket: Release {release_name(r)} started: {revision_state(r, view.timezone)}. Its "
            "cleanup tickets and checklist are in the release thread"
        )
        return text + (f": {thread}" if thread else ".")
    text = (
        f":information_source: {release_name(r)} was already started "
        f"{when(r.started_at, view.timezone)} by {started_by(r)} (phase "
        f"{phase_label(r.phase)}); nothing done."
    )
    if r.phase is ReleasePhase.ABORTED:
        text += " Retry the rollout to restart its clocks, or start the next version."
    return text + (f" {thread}" if thread else "")


def winner_reply(view: ReleaseView, now: datetime, variant: str | None = None) -> str:
    """What `/release winner` answers: the winner and the experiment ticket's due date."""
    r = view.release
    winner = _safe(r.winner or variant or "?", 64)
    head = f":trophy: `{winner}` is the winner of {release_name(r)}'s experiment"
    ticket = next((t for t in view.tickets if t.kind is TicketKind.REMOVE_EXPERIMENT_FLAG), None)
    if ticket is None:
        return head + "; the service has no experiment flag, so there is no removal ticket to date."
    today = today_in(view.timezone, now)
    return (
        f"{head}. The experiment flag's removal ticket {ticket_head(ticket)} is now "
        f"{due_label(ticket, today)}."
    )
