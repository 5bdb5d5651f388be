"""Card buttons: `rollout_abort`, `rollout_retry`, `rollout_promote`, …, `revert_open`, and
`circuit_break_glass` (on a refused circuit click).

Each button's value carries the service, the target, the revision and the card epoch it was
rendered with (bot.blocks.rollout.button_value), so the responder can refuse stale cards and
derive the idempotency key that makes double clicks and retries execute once. The click is
acked at once; the action runs on the work queue. What a listener does itself after the ack
(reading the button's value, opening a modal) runs under `errors.after_ack`: a value rollbot
did not make, or a modal Slack refuses to open, is told to the clicker and never raised
(bot.slack.errors says what raising after the ack cost).

`revert_open` (Tier 3) opens the revert modal with views.open in the listener itself, right
after the ack: its trigger id expires 3 s after the click, too soon for the work queue. The
modal's submission is handled in bot.slack.listeners.views. When a revert is already
recorded for the card's revision (a card not yet re-rendered), no modal: the clicker alone
is told who started it, when, with its link.

`circuit_open` refused only for want of break-glass (an owner who is not on call) tells the
clicker so with a "Break glass…" button (`circuit_break_glass`, carrying the card's button
value and message); that click opens the break-glass modal the same way, asking for the
reason, with the click's response_url in the modal's private_metadata; its submission is
handled in bot.slack.listeners.views too, which rewrites that refusal through it once the
flip is done.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.actions import ActionRequest, FlagRequest
from bot.blocks import modals, replies, rollout, tiers
from bot.core.errors import InvalidRequest
from bot.core.model import FlagAction, RolloutAction
from bot.slack import errors
from bot.slack.listeners.common import actor, retry_num, run_and_tell
from bot.slack.listeners.deps import Deps

ACTION_ID = re.compile(r"^rollout_(abort|retry|promote|promote_full|pause)$")


def parse_value(raw: str) -> dict[str, Any]:
    try:
        value = rollout.parse_button_value(raw)
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("This button's payload is not one rollbot made.") from None
    if not isinstance(value.get("s"), str):
        raise InvalidRequest("This button's payload is not one rollbot made.")
    return value


def _card_message(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, message ts) of the message whose button was clicked."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return channel, ts


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(ACTION_ID)
    async def on_click(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any, request: Any
    ) -> None:
        await ack()
        async with errors.after_ack(respond, what=f"click {action['action_id']}"):
            match = ACTION_ID.match(action["action_id"])
            assert match is not None
            verb = RolloutAction(match.group(1).replace("_", "-"))
            value = parse_value(action.get("value", ""))
            user = body.get("user") or {}
            retries = retry_num(request)

            async def job() -> None:
                who = await actor(
                    deps, user.get("id", ""), user.get("username") or user.get("name", "")
                )
                await run_and_tell(
                    deps,
                    ActionRequest(
                        service=value["s"],
                        action=verb,
                        actor=who,
                        revision=int(value["r"]) if "r" in value else None,
                        epoch=int(value["e"]) if "e" in value else None,
                        retry_num=retries,
                    ),
                    respond,
                )

            deps.work.submit(job, on_error=errors.reporter(respond, what=f"click {verb}"))

    @app.action(tiers.RUNBOOK_ACTION_ID)
    async def on_runbook(ack: Any) -> None:
        # A URL button: Slack opens the link itself and still sends the click; just ack.
        await ack()

    circuit_actions = {
        tiers.CIRCUIT_ACTION_ID: FlagAction.CIRCUIT_OPEN,
        tiers.CIRCUIT_CLOSE_ACTION_ID: FlagAction.CIRCUIT_CLOSE,
    }

    @app.action(re.compile("^(" + "|".join(circuit_actions) + ")$"))
    async def on_circuit(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any, request: Any
    ) -> None:
        await ack()
        flip = circuit_actions[action["action_id"]]
        async with errors.after_ack(respond, what=str(flip)):
            value = parse_value(action.get("value", ""))
            user = body.get("user") or {}
            retries = retry_num(request)
            # Opening, refused only for want of break-glass: the refusal offers the modal.
            channel, ts = _card_message(body)
            break_glass = (
                replies.break_glass_value(value=action["value"], channel=channel, message_ts=ts)
                if flip is FlagAction.CIRCUIT_OPEN
                else None
            )

            async def job() -> None:
                who = await actor(
                    deps, user.get("id", ""), user.get("username") or user.get("name", "")
                )
                await run_and_tell(
                    deps,
                    FlagRequest(service=value["s"], action=flip, actor=who, retry_num=retries),
                    respond,
                )

            deps.work.submit(
                job, on_error=errors.reporter(respond, what=str(flip), break_glass=break_glass)
            )

    @app.action(replies.BREAK_GLASS_ACTION_ID)
    async def on_break_glass(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        async with errors.after_ack(respond, what="break-glass click"):
            value = parse_value(action.get("value", ""))
            cfg = deps.responder.service(value["s"])
            flag, environment = deps.responder.circuit_target(value["s"])
            # This click's response_url: the submission rewrites the refusal through it.
            response_url = body.get("response_url")
            metadata = modals.break_glass_metadata(
                service=value["s"],
                revision=int(value["r"]) if value.get("r") is not None else None,
                epoch=int(value["e"]) if value.get("e") is not None else None,
                channel=value.get("c") or cfg.channel,
                message_ts=value.get("ts"),
                response_url=response_url if isinstance(response_url, str) else None,
            )
            view = modals.break_glass_modal(
                service=value["s"],
                flag=flag,
                environment=environment,
                channel=cfg.channel,
                owners_group=cfg.owners.slack_usergroup if cfg.owners else None,
                metadata=metadata,
                others=[e.key for e in cfg.flags.entries() if e.role != "circuit"]
                if cfg.flags
                else [],
            )
            await deps.chat.open_view(str(body.get("trigger_id") or ""), view)

    @app.action(tiers.REVERT_OPEN_ACTION_ID)
    async def on_revert_open(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        async with errors.after_ack(respond, what="revert_open click"):
            value = parse_value(action.get("value", ""))
            revision = int(value["r"]) if value.get("r") is not None else None
            if revision is not None:
                already = await deps.responder.revert_already_started(value["s"], revision)
                if already is not None:
                    await respond(
                        text=f":information_source: {already}",
                        response_type="ephemeral",
                        replace_original=False,
                    )
                    return
            plan = await deps.responder.revert_plan(value["s"], revision=revision)
            channel, ts = _card_message(body)
            metadata = modals.revert_metadata(
                service=value["s"],
                revision=revision,
                epoch=int(value["e"]) if value.get("e") is not None else None,
                channel=channel,
                message_ts=ts,
            )
            view = modals.revert_modal(
                service=value["s"],
                state=plan.state,
                steps=plan.steps,
                sha=plan.sha,
                metadata=metadata,
            )
            await deps.chat.open_view(str(body.get("trigger_id") or ""), view)
