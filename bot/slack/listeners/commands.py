"""`/rollback SERVICE [status|abort|retry|promote|promote-full|pause|flags|runbook|help]`.

What can be answered without I/O (help, a malformed command, an unknown service) is
answered in the ack itself; everything else is acked at once and continued on the work
queue, reporting through `respond` (the command's response_url).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.actions import ActionRequest, FlagRequest
from bot.blocks import card as card_blocks
from bot.blocks import replies
from bot.core import commands as parser
from bot.core import links, mrkdwn
from bot.core import rollouts as core_rollouts
from bot.core.errors import InvalidRequest, UnknownService
from bot.core.model import Actor, FlagAction, RolloutAction
from bot.slack import errors
from bot.slack.listeners.common import actor, once, retry_num, run_and_tell
from bot.slack.listeners.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command(deps.command)
    async def rollback(
        ack: Any, command: dict[str, Any], respond: Any, request: Any, context: Any
    ) -> None:
        try:
            cmd = parser.parse(command.get("text") or "", command=deps.command)
            if cmd.service is not None:
                deps.responder.service(cmd.service)
        except (InvalidRequest, UnknownService) as err:
            text, _ = errors.message_for(err)
            await ack(text=text)
            return
        if cmd.verb == "help" or cmd.service is None:
            await ack(
                blocks=replies.help_blocks(deps.command, deps.release_command),
                text="rollbot help",
            )
            return
        service, action = cmd.service, cmd.action
        if cmd.verb == "flags":
            await ack()
            deps.work.submit(
                once(deps, context, lambda: _flags(deps, service, respond)),
                on_error=errors.reporter(respond, what=f"flags {service}"),
            )
            return
        if cmd.verb == "ack":
            if deps.acknowledge is None:
                await ack(text=":warning: This rollbot does not page PagerDuty.")
                return
            await ack()
            acknowledge = deps.acknowledge
            who = Actor(command["user_id"], command.get("user_name", ""), source="slash-command")
            deps.work.submit(
                once(deps, context, lambda: _acknowledge(acknowledge, service, who, respond)),
                on_error=errors.reporter(respond, what=f"ack {service}"),
            )
            return
        if cmd.verb == "runbook":
            if deps.runbook_link is None:
                await ack(text=":warning: This rollbot does not issue runbook links.")
                return
            await ack()
            user_id, user_name = command["user_id"], command.get("user_name", "")
            deps.work.submit(
                once(
                    deps, context, lambda: _runbook_link(deps, service, user_id, user_name, respond)
                ),
                on_error=errors.reporter(respond, what=f"runbook {service}"),
            )
            return
        flag_action = cmd.flag_action
        if flag_action is not None:
            try:
                deps.responder.circuit_flag(service)
            except InvalidRequest as err:
                text, _ = errors.message_for(err)
                await ack(text=text)
                return
            await ack(text=f":hourglass_flowing_sand: {cmd.verb} `{service}`: working on it…")
            user_id, user_name = command["user_id"], command.get("user_name", "")
            # Slack sends a command's text with `&`, `<`, `>` escaped: the reason is kept as
            # the person typed it (audit, flag comment) and escaped again where it is shown.
            reason = mrkdwn.unescape(cmd.break_glass) if cmd.break_glass else None
            retries = retry_num(request)
            deps.work.submit(
                once(
                    deps,
                    context,
                    lambda: _flip(
                        deps, service, flag_action, user_id, user_name, retries, respond, reason
                    ),
                ),
                on_error=errors.reporter(respond, what=f"{flag_action} {service}"),
            )
            return
        if action is None:
            await ack()
            deps.work.submit(
                once(deps, context, lambda: _status(deps, service, respond)),
                on_error=errors.reporter(respond, what=f"status {service}"),
            )
            return
        await ack(text=f":hourglass_flowing_sand: {cmd.verb} `{service}`: working on it…")
        user_id, user_name, retries = (
            command["user_id"],
            command.get("user_name", ""),
            retry_num(request),
        )
        deps.work.submit(
            once(
                deps,
                context,
                lambda: _act(deps, service, action, user_id, user_name, retries, respond),
            ),
            on_error=errors.reporter(respond, what=f"{action} {service}"),
        )


async def _status(deps: Deps, service: str, respond: Any) -> None:
    state, epoch = await deps.responder.status(service)
    now = datetime.now(UTC)
    trouble = core_rollouts.trouble(state)
    await respond(
        text=card_blocks.rollout_card_text(
            service=service, state=state, trouble=trouble, epoch=epoch, now=now
        ),
        blocks=card_blocks.rollout_card(
            service=service, state=state, trouble=trouble, epoch=epoch, now=now
        ),
        response_type="ephemeral",
    )


async def _flags(deps: Deps, service: str, respond: Any) -> None:
    states = await deps.responder.flag_states(service)
    await respond(text=replies.flags_text(service, states), response_type="ephemeral")


async def _acknowledge(
    acknowledge: Callable[[str, Actor], Awaitable[str]],
    service: str,
    who: Actor,
    respond: Any,
) -> None:
    await respond(response_type="ephemeral", text=await acknowledge(service, who))


async def _runbook_link(
    deps: Deps, service: str, user_id: str, user_name: str, respond: Any
) -> None:
    """A signed, single-use link to the service's runbook page, for the asker only."""
    assert deps.runbook_link is not None
    who = await actor(deps, user_id, user_name)
    link = deps.runbook_link(service, who.id, who.name)  # InvalidRequest: not set up
    await respond(text=links.message(link), response_type="ephemeral", replace_original=False)


async def _flip(
    deps: Deps,
    service: str,
    action: FlagAction,
    user_id: str,
    user_name: str,
    retries: int,
    respond: Any,
    reason: str | None = None,
) -> None:
    who = await actor(deps, user_id, user_name)
    await run_and_tell(
        deps,
        FlagRequest(
            service=service,
            action=action,
            actor=Actor(who.id, who.name, "slash-command"),
            retry_num=retries,
            break_glass_reason=reason,
        ),
        respond,
    )


async def _act(
    deps: Deps,
    service: str,
    action: RolloutAction,
    user_id: str,
    user_name: str,
    retries: int,
    respond: Any,
) -> None:
    who = await actor(deps, user_id, user_name)
    await run_and_tell(
        deps,
        ActionRequest(
            service=service,
            action=action,
            actor=Actor(who.id, who.name, "slash-command"),
            retry_num=retries,
        ),
        respond,
    )
