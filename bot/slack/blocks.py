"""Every Slack message rollbot sends, as pure Block Kit builders (no I/O).

Built with the typed `slack_sdk.models.blocks` classes, which raise
`SlackObjectFormationError` when a limit is broken (button text > 75, value > 2000, …);
each builder returns plain dicts (`.to_dict()`) ready for `chat.postMessage`.

    rollout_card(...) / rollout_card_text(...)   the card of one Rollout revision
    button_value(...) / parse_button_value(...)  what a card button carries
    timeline_line, help_blocks, error_blocks, unknown_service_text, refusal_text,
    already_done_text                            the smaller messages
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.core.model import RolloutAction, RolloutState, Trouble, TroubleKind
from bot.core.ports import ActionRecord
from bot.core.tiers import available_actions, is_paused

ACTION_IDS: dict[RolloutAction, str] = {
    RolloutAction.ABORT: "rollout_abort",
    RolloutAction.RETRY: "rollout_retry",
    RolloutAction.PROMOTE: "rollout_promote",
    RolloutAction.PROMOTE_FULL: "rollout_promote_full",
    RolloutAction.PAUSE: "rollout_pause",
}
ACTIONS_BLOCK_ID = "rollout_actions"

_LABELS: dict[RolloutAction, str] = {
    RolloutAction.ABORT: "Abort (Tier 1)",
    RolloutAction.RETRY: "Retry",
    RolloutAction.PROMOTE: "Promote",
    RolloutAction.PROMOTE_FULL: "Promote full",
    RolloutAction.PAUSE: "Pause",
}
_PAST: dict[str, str] = {
    "abort": "aborted",
    "retry": "retried",
    "promote": "promoted",
    "promote-full": "fully promoted",
    "pause": "paused",
}
_PRESENT: dict[str, str] = {
    "abort": "aborting",
    "retry": "retrying",
    "promote": "promoting",
    "promote-full": "fully promoting",
    "pause": "pausing",
}
_TROUBLE_EMOJI: dict[TroubleKind, str] = {
    TroubleKind.ANALYSIS_FAILED: ":rotating_light:",
    TroubleKind.ABORTED: ":octagonal_sign:",
    TroubleKind.INCONCLUSIVE: ":grey_question:",
    TroubleKind.PROGRESS_DEADLINE: ":hourglass:",
    TroubleKind.DEGRADED: ":red_circle:",
    TroubleKind.INVALID_SPEC: ":warning:",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the last executed action did, for the card's outcome line."""

    action: RolloutAction
    actor_id: str
    at: datetime
    verified: bool
    seconds: float
    detail: str = ""


# ── small helpers ────────────────────────────────────────────────────────────


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


def _sentence(text: str) -> str:
    """First letter up, a full stop at the end (unlike str.capitalize, keeps the rest)."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_emoji(state: RolloutState) -> str:
    if state.aborted:
        return "🛑"
    if state.phase == "Degraded":
        return "🔴"
    if state.fully_promoted or state.phase == "Healthy":
        return "✅"
    if is_paused(state) or state.phase == "Paused":
        return "⏸️"
    return "🔄"


def status_label(state: RolloutState) -> str:
    return "Aborted" if state.aborted else state.phase


def stable_label(state: RolloutState) -> str:
    """`revision 41`, else the stable ReplicaSet hash, else `unknown`."""
    if state.stable_revision is not None:
        return f"revision {state.stable_revision}"
    if state.stable_rs:
        return f"ReplicaSet {state.stable_rs}"
    return "the stable ReplicaSet"


def button_value(*, service: str, state: RolloutState, epoch: int) -> str:
    """Compact JSON a card button carries: service, namespace, name, revision, epoch."""
    value = json.dumps(
        {"s": service, "ns": state.namespace, "n": state.name, "r": state.revision, "e": epoch},
        separators=(",", ":"),
    )
    if len(value) > 2000:  # Slack's limit for a button value
        raise ValueError("button value over 2000 characters")
    return value


def parse_button_value(value: str) -> dict[str, Any]:
    """The inverse of `button_value`; ValueError when it is not one of ours."""
    data = json.loads(value)
    if not isinstance(data, dict) or not {"s", "ns", "n", "r", "e"} <= data.keys():
        raise ValueError(f"not a rollbot button value: {value!r}")
    return data


# ── confirm dialogs ──────────────────────────────────────────────────────────


def abort_effect(state: RolloutState) -> str:
    return (
        f"patch status.abort=true on {state.key}; traffic returns to stable {stable_label(state)}"
    )


def promote_effect(state: RolloutState) -> str:
    """What `kubectl argo rollouts promote` does at the current step, in one sentence."""
    if state.strategy == "blueGreen":
        return (
            f"clear the pause on {state.key} and switch the active service "
            f"to revision {state.revision}"
        )
    step = f"step {state.step_label}" if state.step_index is not None else "the current step"
    if "InconclusiveAnalysisRun" in state.pause_reasons or (
        state.analysis is not None and state.analysis.status == "Inconclusive"
    ):
        return (
            f"accept the inconclusive analysis on {state.key} and move past {step}; "
            "the remaining steps still run"
        )
    if is_paused(state):
        return (
            f"clear the pause on {state.key} at {step} (canary {state.canary_weight}%) "
            "and continue to the next step; the remaining steps still run"
        )
    return f"skip {step} of {state.key} (canary {state.canary_weight}%) and go on to the next step"


def _confirm(action: RolloutAction, state: RolloutState) -> ConfirmObject | None:
    if action is RolloutAction.ABORT:
        return ConfirmObject(
            title=f"Abort {_clip(state.name, 80)}?",
            text=_clip(_sentence(abort_effect(state)), 300),
            confirm="Abort",
            deny="Cancel",
            style="danger",
        )
    if action is RolloutAction.PROMOTE:
        return ConfirmObject(
            title=f"Promote {_clip(state.name, 80)}?",
            text=_clip(_sentence(promote_effect(state)), 300),
            confirm="Promote",
            deny="Cancel",
        )
    if action is RolloutAction.PROMOTE_FULL:
        return ConfirmObject(
            title=f"Fully promote {_clip(state.name, 70)}?",
            text=_clip(
                f"Patch status.promoteFull=true on {state.key}: skip every remaining step "
                "and analysis and send all traffic to the canary.",
                300,
            ),
            confirm="Promote full",
            deny="Cancel",
            style="danger",
        )
    return None


def action_button(
    action: RolloutAction, *, service: str, state: RolloutState, epoch: int
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=_LABELS[action], emoji=True),
        action_id=ACTION_IDS[action],
        value=button_value(service=service, state=state, epoch=epoch),
        style="danger" if action is RolloutAction.ABORT else None,
        confirm=_confirm(action, state),
    )


# ── the card ─────────────────────────────────────────────────────────────────


def outcome_line(outcome: Outcome) -> str:
    """`Aborted by <@U0ONCALL> at 14:03:12 UTC, verified in 0.8 s` (or `… not verified: …`)."""
    verb = _PAST[outcome.action.value]
    verb = verb[:1].upper() + verb[1:]
    head = f"{verb} by <@{outcome.actor_id}> at {clock(outcome.at)}"
    if outcome.verified:
        return f"{head}, verified in {outcome.seconds:.1f} s"
    return f"{head}, not verified: {outcome.detail or 'the change was not observed'}"


def _fields(state: RolloutState, now: datetime) -> list[MarkdownTextObject]:
    weight = f"{state.canary_weight}%"
    if state.set_weight is not None and state.set_weight != state.canary_weight:
        weight += f" (step asks {state.set_weight}%)"
    stable = stable_label(state)
    if state.stable_image:
        stable += f"\n`{state.stable_image}`"
    canary = f"revision {state.revision}"
    if state.canary_image:
        canary += f"\n`{state.canary_image}`"
    if state.analysis is not None:
        analysis = f"{state.analysis.status} ({state.analysis.name})"
        if state.analysis.message:
            analysis += f"\n{state.analysis.message}"
    else:
        analysis = "-"
    pairs = [
        ("Phase", status_label(state)),
        ("Step", state.step_label),
        ("Canary weight", weight),
        ("Stable", stable),
        ("Canary", canary),
        ("Analysis", analysis),
        ("Age", humanise_age(state.created_at, now)),
        ("Rollout", f"`{state.key}`"),
    ]
    return [MarkdownTextObject(text=_clip(f"*{k}*\n{v}", 2000)) for k, v in pairs]


def rollout_card(
    *,
    service: str,
    state: RolloutState,
    trouble: Trouble | None,
    epoch: int,
    now: datetime,
    outcome: Outcome | None = None,
    notice: str | None = None,
) -> list[dict[str, Any]]:
    """The card of one Rollout revision: status, facts, trouble, outcome, then the buttons."""
    blocks: list[Block] = [
        HeaderBlock(
            text=PlainTextObject(
                text=_clip(f"{status_emoji(state)} {service} · {status_label(state)}", 150),
                emoji=True,
            )
        )
    ]
    if trouble is not None:
        emoji = _TROUBLE_EMOJI.get(trouble.kind, ":warning:")
        summary = _clip(f"{emoji} {trouble.summary}", 3000)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=summary)))
    blocks.append(SectionBlock(fields=_fields(state, now)))
    if state.message:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(state.message, 3000))]))
    if outcome is not None:
        mark = ":white_check_mark:" if outcome.verified else ":x:"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{mark} {outcome_line(outcome)}")))
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_clip(notice, 3000))]))
    actions = available_actions(state)
    if actions:
        blocks.append(DividerBlock())
        blocks.append(
            ActionsBlock(
                block_id=ACTIONS_BLOCK_ID,
                elements=[
                    action_button(a, service=service, state=state, epoch=epoch) for a in actions
                ],
            )
        )
    return [b.to_dict() for b in blocks]


def rollout_card_text(
    *,
    service: str,
    state: RolloutState,
    trouble: Trouble | None,
    epoch: int = 0,
    now: datetime | None = None,
    outcome: Outcome | None = None,
    notice: str | None = None,
) -> str:
    """The notification/fallback text of the card (what a phone shows)."""
    text = (
        f"{service} revision {state.revision}: {status_label(state)}, "
        f"step {state.step_label}, canary {state.canary_weight}%"
    )
    if trouble is not None:
        text += f" — {trouble.summary}"
    if outcome is not None:
        text += f". {outcome_line(outcome)}"
    return _clip(text, 3000)


# ── smaller messages ─────────────────────────────────────────────────────────


def timeline_line(*, at: datetime, text: str) -> str:
    """One line of a card's thread: `` `14:03:12 UTC` text ``."""
    return f"`{clock(at)}` {text}"


_HELP = [
    ("status", "show the card of SERVICE's Rollout now (anyone)"),
    ("abort", "Tier 1: stop the canary, traffic back to the stable revision"),
    ("retry", "restart an aborted Rollout from its first step"),
    ("promote", "clear the current pause or analysis gate and go to the next step"),
    ("promote-full", "skip every remaining step and analysis: 100% to the new revision"),
    ("pause", "pause the Rollout at its current step"),
    ("help", "this message"),
]


def help_blocks(command: str = "/rollback") -> list[dict[str, Any]]:
    usage = f"*Usage:* `{command} SERVICE [status|abort|retry|promote|promote-full|pause|help]`"
    lines = "\n".join(f"• `{command} SERVICE {verb}`: {what}" for verb, what in _HELP)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=usage)),
        SectionBlock(text=MarkdownTextObject(text=lines)),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=(
                        "Without a verb, `status` is assumed. Actions other than status need "
                        "the service's on-call group. Tier 2 (circuit breaker) and Tier 3 "
                        "(Git revert) are in the service's runbook."
                    )
                )
            ]
        ),
    ]
    return [b.to_dict() for b in blocks]


def help_text(command: str = "/rollback") -> str:
    return f"Usage: {command} SERVICE [status|abort|retry|promote|promote-full|pause|help]"


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
    return f"Unknown service `{name}`. Known services: {listed}."


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
    verb = _PAST.get(record.action, record.action)
    text = f"Already {verb} by <@{record.actor_id}> at {clock(record.finished_at)}"
    if record.status == "failed":
        text += " (it failed; see the thread)"
    return text
