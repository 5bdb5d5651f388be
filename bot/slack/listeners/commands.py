"""`/rollback SERVICE [status|abort|retry|promote|promote-full|pause|help]`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.core import commands as parser
from bot.core import rollouts as core_rollouts
from bot.core.errors import InvalidRequest
from bot.responder import ActionRequest
from bot.slack import blocks
from bot.slack.listeners import Deps
from bot.slack.listeners.common import actor, retry_num, run_and_tell


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command(deps.command)
    async def rollback(ack: Any, command: dict[str, Any], respond: Any, request: Any) -> None:
        text = command.get("text") or ""
        try:
            cmd = parser.parse(text, command=deps.command)
        except InvalidRequest:
            await ack()
            raise  # the one error handler tells the user, with the usage
        if cmd.verb == "help" or cmd.service is None:
            await ack(blocks=blocks.help_blocks(deps.command), text="rollbot help")
            return
        if cmd.action is None:  # status
            await ack()
            deps.responder.service(cmd.service)  # UnknownService → the error handler
            state, epoch = await deps.responder.status(cmd.service)
            kw: dict[str, Any] = {"service": cmd.service, "state": state, "epoch": epoch,
                  "trouble": core_rollouts.trouble(state), "now": datetime.now(UTC)}
            await respond(text=blocks.rollout_card_text(**kw), blocks=blocks.rollout_card(**kw),
                          response_type="ephemeral")
            return
        await ack(text=f":hourglass_flowing_sand: {cmd.verb} `{cmd.service}`: working on it…")
        who = await actor(deps, command["user_id"], command.get("user_name", ""))
        who = type(who)(who.id, who.name, "slash-command")
        await run_and_tell(
            deps,
            ActionRequest(service=cmd.service, action=cmd.action, actor=who,
                          retry_num=retry_num(request)),
            respond,
        )
