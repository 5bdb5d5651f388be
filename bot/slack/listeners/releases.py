"""`/release start|status|list|winner|help` and the App Home tab.

What can be answered without I/O (help, a malformed command, release tracking not enabled)
is answered in the ack itself; everything else is acked at once and continued on the work
queue, reporting through `respond` (the command's response_url, ephemeral). Errors go to
the one error reporter (bot.slack.errors): an unknown service lists the known ones.

Who may: reading (`status`, `list`, `help`, the App Home) is open to anyone who can run the
command. What changes state, `start` and `winner`, takes Tier 1's guard (bot.core.policy):
the person on call for the service (PagerDuty) or a member of its owners group, asked
through the responder before the desk does anything (nothing written, nothing filed in
Jira). A refusal is audited and told to the asker alone, naming whom to ask. The CLI's
`rollbot release start` does not come through here and is not asked: it runs with the
database credentials (CI), so it is already trusted.

The App Home: on `app_home_opened` for the Home tab, the releases in flight are published
for that user with `views.publish`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.blocks import release as release_blocks
from bot.core import cleanup, policy
from bot.core import release_commands as parser
from bot.core.errors import InvalidRequest
from bot.core.model import Actor
from bot.slack import errors
from bot.slack.listeners.common import actor, once
from bot.slack.listeners.deps import Deps, ReleaseDesk


def register(app: AsyncApp, deps: Deps) -> None:
    name = deps.release_command

    @app.command(name)
    async def release(ack: Any, command: dict[str, Any], respond: Any, context: Any) -> None:
        try:
            cmd = parser.parse(command.get("text") or "", command=name)
        except InvalidRequest as err:
            text, _ = errors.message_for(err)
            await ack(text=text)
            return
        if cmd.verb == "help":
            text, blocks = release_blocks.release_help(name)
            await ack(text=text, blocks=blocks)
            return
        desk = deps.releases
        if desk is None:
            await ack(text=release_blocks.unavailable_text(name))
            return
        user_id, user_name = command["user_id"], command.get("user_name", "")
        if cmd.verb == "list":
            await ack()
            deps.work.submit(
                once(deps, context, lambda: _list(desk, respond)),
                on_error=errors.reporter(respond, what="release list"),
            )
            return
        service = str(cmd.service)
        if cmd.verb == "status":
            await ack()
            deps.work.submit(
                once(deps, context, lambda: _status(desk, service, respond)),
                on_error=errors.reporter(respond, what=f"release status {service}"),
            )
            return
        if cmd.verb == "winner":
            variant = str(cmd.variant)
            await ack(
                text=f":hourglass_flowing_sand: Declaring `{variant}` the winner of "
                f"`{service}`'s experiment…"
            )
            deps.work.submit(
                once(
                    deps,
                    context,
                    lambda: _winner(deps, desk, service, variant, user_id, user_name, respond),
                ),
                on_error=errors.reporter(respond, what=f"release winner {service}"),
            )
            return
        version, owner = str(cmd.version), cmd.owner
        await ack(text=f":hourglass_flowing_sand: Starting release {service} {version}…")
        deps.work.submit(
            once(
                deps,
                context,
                lambda: _start(deps, desk, service, version, owner, user_id, user_name, respond),
            ),
            on_error=errors.reporter(respond, what=f"release start {service} {version}"),
        )

    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: Any) -> None:
        user = event.get("user")
        if event.get("tab") != "home" or not user:
            return  # the Messages tab (where rollbot's DMs land) or a malformed event
        deps.work.submit(
            lambda: _publish_home(deps.releases, client, str(user)),
            on_error=errors.reporter(None, what="app_home_opened"),
        )


async def _who(deps: Deps, user_id: str, user_name: str) -> Actor:
    who = await actor(deps, user_id, user_name)
    return Actor(who.id, who.name, "slash-command")


async def _start(
    deps: Deps,
    desk: ReleaseDesk,
    service: str,
    version: str,
    owner: str | None,
    user_id: str,
    user_name: str,
    respond: Any,
) -> None:
    who = await _who(deps, user_id, user_name)
    await deps.responder.authorise(
        service, policy.RELEASE_START, who, target=cleanup.release_id(service, version)
    )
    created, view = await desk.start(service, version, actor=who, owner=owner)
    await respond(
        text=release_blocks.start_reply(created, view),
        response_type="ephemeral",
        replace_original=False,
    )


async def _status(desk: ReleaseDesk, service: str, respond: Any) -> None:
    views = await desk.status(service)
    text, blocks = release_blocks.release_status(views, datetime.now(UTC), service=service)
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


async def _list(desk: ReleaseDesk, respond: Any) -> None:
    views = await desk.list_active()
    text, blocks = release_blocks.release_list(views, datetime.now(UTC))
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


async def _winner(
    deps: Deps,
    desk: ReleaseDesk,
    service: str,
    variant: str,
    user_id: str,
    user_name: str,
    respond: Any,
) -> None:
    who = await _who(deps, user_id, user_name)
    await deps.responder.authorise(service, policy.RELEASE_WINNER, who)
    view = await desk.declare_winner(service, variant, actor=who)
    await respond(
        text=release_blocks.winner_reply(view, datetime.now(UTC), variant),
        response_type="ephemeral",
        replace_original=False,
    )


async def _publish_home(desk: ReleaseDesk | None, client: Any, user: str) -> None:
    now = datetime.now(UTC)
    if desk is None:
        view = release_blocks.home_view([], now, note="Release tracking is not enabled here.")
    else:
        view = release_blocks.home_view(await desk.list_active(), now)
    await client.views_publish(user_id=user, view=view)
