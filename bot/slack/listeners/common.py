"""What commands and buttons share: running an action and telling the person."""

from __future__ import annotations

from typing import Any

from bot.core.errors import RollbotError
from bot.core.model import Actor
from bot.responder import ActionRequest, ActionResult, FlagRequest
from bot.slack.listeners import Deps


def retry_num(request: Any) -> int:
    values = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(values[0])
    except ValueError:
        return 0


async def actor(deps: Deps, user_id: str, fallback_name: str = "") -> Actor:
    try:
        name = await deps.chat.user_name(user_id)
    except RollbotError:  # a name is cosmetic; never block an abort on it
        name = fallback_name or user_id
    return Actor(user_id, name or fallback_name or user_id)


async def run_and_tell(deps: Deps, req: ActionRequest | FlagRequest, respond: Any) -> ActionResult:
    if isinstance(req, FlagRequest):
        result = await deps.responder.handle_flag(req)
    else:
        result = await deps.responder.handle(req)
    if (
        result.status == "duplicate"
        and req.retry_num
        and result.record is not None
        and result.record.actor_id == req.actor.id
    ):
        # Slack re-sent the same request; the first delivery already answered.
        return result
    icon = {"succeeded": ":white_check_mark:", "failed": ":x:", "duplicate": ":information_source:"}
    await respond(
        text=f"{icon.get(result.status, '')} {result.message}",
        response_type="ephemeral",
        replace_original=False,
    )
    return result
