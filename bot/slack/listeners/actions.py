"""Card buttons: `rollout_abort`, `rollout_retry`, `rollout_promote`, …

Each button's value carries the service, the target, the revision and the card epoch it was
rendered with (see bot.slack.blocks), so the responder can refuse stale cards and derive
the idempotency key that makes double clicks and retries execute once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.core.errors import InvalidRequest
from bot.core.model import RolloutAction
from bot.responder import ActionRequest
from bot.slack.listeners import Deps
from bot.slack.listeners.common import actor, retry_num, run_and_tell

ACTION_ID = re.compile(r"^rollout_(abort|retry|promote|promote_full|pause)$")


def parse_value(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
        if not isinstance(value, dict) or not isinstance(value.get("s"), str):
            raise ValueError
        return value
    except ValueError:
        raise InvalidRequest("This button's payload is not one rollbot made.") from None


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(ACTION_ID)
    async def on_click(ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any,
                       request: Any) -> None:
        await ack()
        verb = ACTION_ID.match(action["action_id"]).group(1).replace("_", "-")  # type: ignore[union-attr]
        value = parse_value(action.get("value", ""))
        user = body.get("user") or {}
        who = await actor(deps, user.get("id", ""), user.get("username") or user.get("name", ""))
        await run_and_tell(
            deps,
            ActionRequest(
                service=value["s"],
                action=RolloutAction(verb),
                actor=who,
                revision=int(value["r"]) if "r" in value else None,
                epoch=int(value["e"]) if "e" in value else None,
                retry_num=retry_num(request),
            ),
            respond,
        )
