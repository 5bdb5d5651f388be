"""The Rollout's own pieces of the card: its status labels, what a card button carries
(`button_value` / `parse_button_value`), and the Rollout's action buttons (Tier 1 abort and
the Argo verbs) with the confirm dialogs saying exactly what each will do.

A confirm dialog is plain text in Slack (`confirm_dialog`): its words carry no mrkdwn marks
(backticks, asterisks, `<url|label>` links), which Slack would show as typed.

The Rollout's status strings are the cluster's words and are escaped where they go into
mrkdwn.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import ButtonElement, ConfirmObject, PlainTextObject

from bot.core.model import RolloutAction, RolloutState
from bot.core.mrkdwn import clip as _clip
from bot.core.mrkdwn import escape as _escape
from bot.core.mrkdwn import plain as _plain
from bot.core.tiers import is_paused

__all__ = [
    "ACTIONS_BLOCK_ID",
    "ACTION_IDS",
    "abort_effect",
    "action_button",
    "button_value",
    "confirm_dialog",
    "parse_button_value",
    "promote_effect",
    "stable_label",
    "status_emoji",
    "status_label",
]

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


def _sentence(text: str) -> str:
    """First letter up, a full stop at the end (unlike str.capitalize, keeps the rest)."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


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
    """`revision 41`, else the stable ReplicaSet hash, else `unknown` (mrkdwn)."""
    if state.stable_revision is not None:
        return f"revision {state.stable_revision}"
    if state.stable_rs:
        return f"ReplicaSet {_escape(state.stable_rs)}"
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


def confirm_dialog(*, title: str, text: str, confirm: str, danger: bool = False) -> ConfirmObject:
    """A button's confirm dialog. Slack shows its text as plain text, so `text` (rollbot's
    mrkdwn: its outside pieces escaped) is said without marks: code spans and emphasis
    dropped, links as their label, entities decoded (`bot.core.mrkdwn.plain`); at most 300
    characters."""
    return ConfirmObject(
        title=PlainTextObject(text=_clip(_plain(title), 100)),
        text=PlainTextObject(text=_clip(_plain(text), 300)),
        confirm=confirm,
        deny="Cancel",
        style="danger" if danger else None,
    )


def _confirm(action: RolloutAction, state: RolloutState) -> ConfirmObject | None:
    if action is RolloutAction.ABORT:
        return confirm_dialog(
            title=f"Abort {_clip(state.name, 80)}?",
            text=_sentence(abort_effect(state)),
            confirm="Abort",
            danger=True,
        )
    if action is RolloutAction.PROMOTE:
        return confirm_dialog(
            title=f"Promote {_clip(state.name, 80)}?",
            text=_sentence(promote_effect(state)),
            confirm="Promote",
        )
    if action is RolloutAction.PROMOTE_FULL:
        return confirm_dialog(
            title=f"Fully promote {_clip(state.name, 70)}?",
            text=f"Patch status.promoteFull=true on {state.key}: skip every remaining step "
            "and analysis and send all traffic to the canary.",
            confirm="Promote full",
            danger=True,
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
