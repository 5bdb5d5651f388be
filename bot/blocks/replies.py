"""The smaller messages around the card: thread lines (`timeline_line`, `revert_line`),
the ephemeral replies of the command and the buttons (help, errors, refusals, "already
done", flags, the recorded revert and the one already started), the refusal of a
circuit click offering the "Break glass…" button, and what that refusal becomes once the
break-glass flip is done (the button gone, so it cannot invite a second use).

Text that rollbot did not write (error details, service names and URLs people typed, flag
descriptions) is escaped with `bot.core.mrkdwn` where it is put into mrkdwn; arguments
documented as mrkdwn (thread lines, refusal reasons) are rollbot's own and already carry
escaped outside pieces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.rollout import parse_button_value
from bot.blocks.text import PAST_TENSE, clock
from bot.blocks.tiers import revert_link
from bot.core import policy
from bot.core.commands import usage as command_usage
from bot.core.flags import FlagStatus
from bot.core.model import FlagState, RolloutAction
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import is_web_url as _is_web_url
from bot.core.mrkdwn import link as _link
from bot.core.mrkdwn import safe as _safe
from bot.core.ports import ActionRecord
from bot.core.release_commands import usage as release_usage

__all__ = [
    "BREAK_GLASS_ACTION_ID",
    "HELP_GROUPS",
    "already_done_text",
    "break_glass_used_message",
    "break_glass_value",
    "circuit_refusal_blocks",
    "error_blocks",
    "flags_text",
    "help_blocks",
    "help_text",
    "refusal_text",
    "revert_already_text",
    "revert_line",
    "revert_recorded_text",
    "timeline_line",
    "unknown_service_text",
]

# The button on a circuit click's refusal (owner, not on call) opening the break-glass modal.
BREAK_GLASS_ACTION_ID = "circuit_break_glass"

_PRESENT: dict[str, str] = {
    "abort": "aborting",
    "retry": "retrying",
    "promote": "promoting",
    "promote-full": "fully promoting",
    "pause": "pausing",
}


# ── smaller messages ─────────────────────────────────────────────────────────


def timeline_line(*, at: datetime, text: str) -> str:
    """One line of a card's thread: `` `14:03:12 UTC` text `` (`text` is mrkdwn: escape the
    outside pieces in it with `bot.core.mrkdwn.escape`)."""
    return f"`{clock(at)}` {text}"


# The help: each line's syntax, the policy verbs it covers and what it does, by group.
# Who may is not written here: it is `policy.who_may` of the line's verbs (one table).
# `{c}` is the `/rollback` command, `{r}` the `/release` one.
HELP_GROUPS: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...], str], ...]], ...] = (
    (
        "Reading",
        "",
        (
            ("`{c} SERVICE status`", ("status",), "the card of SERVICE's Rollout now, for you"),
            ("`{c} SERVICE flags`", ("flags",), "its release, experiment and circuit flags, live"),
            ("`{c} SERVICE runbook`", ("runbook",), "a signed, single-use runbook link, for you"),
            ("`{r} status SERVICE`", ("release.status",), "its releases and cleanup tickets"),
            ("`{r} list`", ("release.list",), "every release in flight and what is due next"),
            ("`{c} help`, `{r} help`", ("help", "release.help"), "this message"),
        ),
    ),
    (
        "Tier 1",
        "the Rollout commands, and what is guarded like them",
        (
            ("`{c} SERVICE abort`", ("abort",), "stop the canary: all traffic back on stable"),
            ("`{c} SERVICE retry`", ("retry",), "restart an aborted Rollout from its first step"),
            ("`{c} SERVICE promote`", ("promote",), "clear the current pause or analysis gate"),
            (
                "`{c} SERVICE promote-full`",
                ("promote-full",),
                "skip every remaining step and analysis: 100% to the new revision",
            ),
            ("`{c} SERVICE pause`", ("pause",), "pause the Rollout at its current step"),
            ("`{c} SERVICE ack`", ("ack",), "acknowledge the service's PagerDuty incident"),
            (
                "`{r} start SERVICE VERSION [@owner|email]`",
                ("release.start",),
                "record a release and file its cleanup tickets in Jira",
            ),
            (
                "`{r} winner SERVICE VARIANT`",
                ("release.winner",),
                "declare the experiment's winner: dates the experiment flag's removal",
            ),
        ),
    ),
    (
        "Tier 2",
        "the circuit breaker",
        (
            (
                "`{c} SERVICE circuit open|close`",
                ("circuit-open", "circuit-close"),
                "flip the circuit-breaker flag: all traffic to the legacy path, or back",
            ),
            (
                "`{c} SERVICE circuit open break-glass REASON`",
                ("circuit-open",),
                "for an owner who is not on call: loud, audited, the reason required",
            ),
        ),
    ),
    (
        "Tier 3",
        "full revert in Git",
        (
            (
                "*Record Tier 3 revert…* (a button on the card)",
                ("revert",),
                "record that you started reverting the release in Git (the card's Tier 3 "
                "lists the exact steps, the runbook explains them); the thread and PagerDuty "
                "are told",
            ),
        ),
    ),
)


def help_blocks(
    command: str = "/rollback", release_command: str = "/release"
) -> list[dict[str, Any]]:
    """`/rollback help`: every command and button, grouped by tier, each group saying who
    may use it from the policy's own table (`bot.core.policy.who_may`)."""
    usage = "\n".join(
        (
            "*Usage:* " + command_usage(command).removeprefix("Usage: "),
            "*Releases:* " + release_usage(release_command).removeprefix("Usage: "),
        )
    )
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=usage))]
    for title, about, entries in HELP_GROUPS:
        who = policy.who_may(entries[0][1][0])
        head = f"*{title}{' (' + about + ')' if about else ''}* — who may: {who}"
        lines = [
            f"• {syntax.format(c=command, r=release_command)}: {what}"
            for syntax, _, what in entries
        ]
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join([head, *lines]))))
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=(
                        "Without a verb, `status` is assumed. When PagerDuty cannot say who is "
                        "on call, the owners group may do everything; so may the owners group "
                        "of a service without an escalation policy; a service with neither "
                        "lets anyone act."
                    )
                )
            ]
        )
    )
    return [b.to_dict() for b in blocks]


def help_text(command: str = "/rollback") -> str:
    return command_usage(command)


def error_blocks(message: str, *, error_id: str | None = None) -> list[dict[str, Any]]:
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(f":warning: {message}", 3000)))
    ]
    if error_id:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Error id `{error_id}`: quote it when you ask the platform team."
                    )
                ]
            )
        )
    return [b.to_dict() for b in blocks]


def unknown_service_text(name: str, known: list[str] | tuple[str, ...] | set[str]) -> str:
    listed = ", ".join(f"`{k}`" for k in sorted(known)) or "(none configured)"
    return f"Unknown service `{_safe(name, 200)}`. Known services: {listed}."


def refusal_text(
    *, actor_id: str, action: RolloutAction | str, service: str, reason: str, allowed: str = ""
) -> str:
    """Why <@actor> may not do this, and who may."""
    verb = action.value if isinstance(action, RolloutAction) else action
    text = f":no_entry: <@{actor_id}>, you may not {verb} `{service}`: {reason}"
    if allowed:
        text += f" Who may: {allowed}."
    return text


def already_done_text(record: ActionRecord) -> str:
    """For the loser of a double click: `Already aborted by <@U…> at 14:03:12 UTC`."""
    if record.status == "running" or record.finished_at is None:
        verb = _PRESENT.get(record.action, record.action)
        return f"Already {verb}: <@{record.actor_id}> started at {clock(record.requested_at)}"
    verb = PAST_TENSE.get(record.action, record.action)
    text = f"Already {verb} by <@{record.actor_id}> at {clock(record.finished_at)}"
    if record.status == "failed":
        text += " (it failed; see the thread)"
    return text


def flags_text(service: str, states: Sequence[FlagStatus]) -> str:
    """`/rollback SERVICE flags`: each flag of the hierarchy with its live state, owner,
    creation date and when it should be removed."""
    if not states:
        return f"`{service}` lists no flags in the catalog (services.{service}.flags)."
    lines = [f"*Flags of `{service}`*"]
    for status in states:
        info, state = status.info, status.state
        head = f"• *{info.type}* `{info.key}`"
        if isinstance(state, FlagState):
            shown = "on" if state.enabled else "off"
            lines.append(f"{head} is *{shown}* in {state.environment} ({state.provider})")
        else:
            lines.append(f"{head} — {_safe(state, 300)}")
        details = [f"owner {_safe(info.owner, 80)}" if info.owner else "no owner set"]
        if info.created is not None:
            details.append(f"created {info.created.isoformat()}")
        details.append(status.removal)
        lines.append("    " + " · ".join(details))
        if info.description:
            lines.append(f"    _{_safe(info.description, 200)}_")
    return "\n".join(lines)


# ── Tier 3: the recorded revert ──────────────────────────────────────────────


def revert_line(*, actor_id: str, url: str, note: str = "") -> str:
    """`:rewind: Tier 3: <@U…> started a revert in Git: <url|url>`, then the note quoted;
    the URL and the note are the user's text, escaped."""
    shown = _safe(url, 300)
    link = _link(url, shown) if _is_web_url(url) else f"`{shown}`"
    line = f":rewind: Tier 3: <@{actor_id}> started a revert in Git: {link}"
    if note.strip():
        line += f"\n>{_safe(note, 2000)}"
    return line


def revert_recorded_text(
    *, service: str, revision: int | None, url: str, sha: str | None, note: str = ""
) -> str:
    """What the person who recorded a revert is told (and the PagerDuty note says)."""
    where = f"`{_safe(service, 200)}`"
    if revision is not None:
        where += f" revision {revision}"
    text = f"Recorded the Tier 3 revert of {where}: {_link(url, _safe(url, 300))}"
    if sha:
        text += f" (release commit `{_safe(sha, 100)}`)"
    text += "."
    if note.strip():
        text += f" Note: {_safe(note, 2000)}"
    return text


def revert_already_text(
    *,
    service: str,
    revision: int | None,
    actor_id: str,
    at: datetime,
    url: str | None,
) -> str:
    """For a second record of a revert (another person, a retried click, a second modal):
    who started the first, when, and its link; nothing more was recorded. `url` None: the
    first is still being recorded (its link not kept yet)."""
    what = f"`{_safe(service, 200)}`"
    if revision is not None:
        what += f" revision {revision}"
    if url is None:
        return (
            f"<@{actor_id}> is recording a Tier 3 revert of {what} (since {clock(at)}); "
            "nothing more was recorded."
        )
    return (
        f"A Tier 3 revert of {what} was already started by <@{actor_id}> at {clock(at)}: "
        f"{revert_link(url)}. Nothing more was recorded; follow that one on the card."
    )


# ── Tier 2: a refused circuit click ──────────────────────────────────────────


def break_glass_value(*, value: str, channel: str | None, message_ts: str | None) -> str:
    """The "Break glass…" button's value: the card's circuit button value (service,
    namespace, name, revision, epoch) plus the card's channel and message ts (`c`, `ts`),
    so that the result can be told in the card's channel later."""
    data = parse_button_value(value)
    data.update({"c": channel, "ts": message_ts})
    out = json.dumps(data, separators=(",", ":"))
    if len(out) > 2000:  # Slack's limit for a button value
        raise ValueError("button value over 2000 characters")
    return out


TIER3_BREAK_GLASS_ACTION_ID = "tier3_break_glass_open"


def circuit_refusal_blocks(text: str, *, break_glass: str | None = None) -> list[dict[str, Any]]:
    """A refused circuit click, told to the clicker alone. `break_glass` (a
    `break_glass_value`): the refusal is only for want of break-glass, so it offers the
    "Break glass…" button opening the modal that asks for the reason."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000)))]
    if break_glass is not None:
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text=PlainTextObject(text="Break glass…", emoji=True),
                        action_id=BREAK_GLASS_ACTION_ID,
                        value=break_glass,
                        style="danger",
                    )
                ]
            )
        )
    return [b.to_dict() for b in blocks]


def tier3_self_approval_blocks(text: str, *, key: str) -> list[dict[str, Any]]:
    """The requester refused their own Tier 3 approval, told to them alone, with the
    "Break glass…" button (`TIER3_BREAK_GLASS_ACTION_ID`, the case's `key` as its value)
    that opens the modal asking for the reason."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000))),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text=PlainTextObject(text="Break glass…", emoji=True),
                    action_id=TIER3_BREAK_GLASS_ACTION_ID,
                    value=key[:2000],
                    style="danger",
                )
            ]
        ),
    ]
    return [b.to_dict() for b in blocks]


# What the refusal says once its break-glass flip is done, by how the flip ended: an
# `ActionResult.status`, or "refused"/"error" when it raised.
_BREAK_GLASS_OUTCOMES: dict[str, tuple[str, str]] = {
    "succeeded": (":white_check_mark:", "circuit opened, verified — see the card's thread"),
    "failed": (
        ":x:",
        "circuit NOT opened: the flag did not read back on — see the card's thread",
    ),
    "duplicate": (
        ":information_source:",
        "nothing more flipped: a flip of this circuit was already done or under way — "
        "see the reply below",
    ),
    "refused": (":no_entry:", "refused, nothing flipped — see the reply below"),
    "error": (":warning:", "the circuit was not confirmed open — see the reply below"),
}


def break_glass_used_message(
    *, at: datetime, status: str, error: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """(text, blocks) replacing a circuit click's refusal once its "Break glass…" modal was
    submitted and the flip is done: who used it (the reader: the refusal is theirs alone),
    when, and how it ended, with no button left.

    `status` is the flip's `ActionResult.status`, or "refused" / "error" when it raised;
    `error` (plain text, escaped here) what went wrong, for "error"."""
    icon, outcome = _BREAK_GLASS_OUTCOMES.get(status, _BREAK_GLASS_OUTCOMES["error"])
    if status == "error" and error:
        outcome = f"the circuit was not confirmed open: {_safe(error.rstrip(' .'), 1500)}"
    text = f"{icon} Break glass used by you at {clock(at)}: {outcome}."
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=_clip(text, 3000)))]
    return text, [b.to_dict() for b in blocks]
