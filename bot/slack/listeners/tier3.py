"""Tier 3 run by rollbot (issue 18): `tier3_start`, the `tier3_confirm` modal,
`tier3_approve`, and the requester's break-glass approval (`tier3_break_glass`).

`tier3_start` opens a modal at once (its trigger expires 3 s after the click) saying the
revert is being prepared, prepares it (a clone and `git revert`: about a second), and
replaces the modal with what was prepared: the diff, and *Push and open*. A revert already
under way (another responder started it, or a retried click) replaces it with who started
it and where it stands; a refusal (not on call nor an owner) or a revert that cannot be
made, with why. Nothing is pushed before the requester submits `tier3_confirm`, and only
the commit that modal showed: a modal left open while the revert was prepared again
(taken over by another responder, or the base branch moved) is refused as stale.

`tier3_approve` is a second person's approval; the requester is refused with a
"Break glass…" button that opens `tier3_break_glass` (a reason, loud). Clicks are acked at
once and their work runs on the work queue; what only the clicker needs to hear is an
ephemeral message.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.blocks import modals, replies, tiers
from bot.core import mrkdwn
from bot.core.errors import InvalidRequest, NotAuthorised, RollbotError
from bot.core.gitops import RevertCase, RevertState
from bot.slack import errors
from bot.slack.listeners.actions import parse_value
from bot.slack.listeners.common import actor
from bot.slack.listeners.deps import Deps
from bot.slack.listeners.views import plain, value_of

BREAK_GLASS_ACTION_ID = replies.TIER3_BREAK_GLASS_ACTION_ID
TITLE = "Tier 3: revert in Git"


def _card_message(body: dict[str, Any]) -> tuple[str | None, str | None]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    return channel, ts


def under_way(case: RevertCase) -> str:
    """Who started the revert already under way, and where it stands (mrkdwn)."""
    word = "merge request" if case.provider == "gitlab" else "pull request"
    where = {
        RevertState.CONFIRMED: f"its {word} is being opened",
        RevertState.OPENED: f"its {word} waits for a second person's approval on the card",
        RevertState.APPROVED: "it is approved and being merged",
        RevertState.MERGE_QUEUED: "branch protection merges it",
        RevertState.MERGED: "it is merged; Argo CD's sync is being verified",
        RevertState.VERIFIED: "it is done and verified",
        RevertState.FAILED: f"it stopped: {mrkdwn.escape(case.error or '')}",
    }.get(case.state, case.state.value)
    link = f" ({mrkdwn.link(case.change_url, word)})" if case.change_url else ""
    return (
        f":information_source: <@{case.requester}> started the Tier 3 revert of "
        f"`{mrkdwn.escape(case.service)}` already{link}: {where}."
    )


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(tiers.TIER3_START_ACTION_ID)
    async def on_start(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        async with errors.after_ack(respond, what="tier3_start click"):
            value = parse_value(action.get("value", ""))
            if deps.gitops is None or value.get("r") is None:
                raise InvalidRequest("rollbot does not run Tier 3 for this service.")
            service, revision = str(value["s"]), int(value["r"])
            view_id = await deps.chat.open_view(
                str(body.get("trigger_id") or ""),
                modals.tier3_message_modal(
                    title=TITLE,
                    text=f":hourglass_flowing_sand: Preparing the revert of "
                    f"`{mrkdwn.escape(service)}` revision {revision} in Git: nothing is "
                    "pushed before you confirm.",
                ),
            )
            user = body.get("user") or {}
            who = await actor(
                deps, user.get("id", ""), user.get("username") or user.get("name", "")
            )
            channel, ts = _card_message(body)
            try:
                case = await deps.gitops.start(
                    service, revision, who, channel=channel, message_ts=ts
                )
            except RollbotError as err:
                icon = ":no_entry:" if isinstance(err, NotAuthorised) else ":x:"
                view = modals.tier3_message_modal(title=TITLE, text=f"{icon} {err.message}")
                await deps.chat.update_view(view_id, view)
                return
            if case.state is RevertState.PREPARED and case.requester == who.id:
                view = modals.tier3_prepared_modal(case, commit_url=_commit_url(case))
            else:
                view = modals.tier3_message_modal(title=TITLE, text=under_way(case))
            await deps.chat.update_view(view_id, view)

    @app.view(modals.TIER3_CONFIRM_CALLBACK_ID)
    async def on_confirm(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        key, shown = modals.parse_tier3_confirm_metadata(str(view.get("private_metadata") or ""))
        user = body.get("user") or {}
        who = await actor(deps, user.get("id", ""), user.get("username") or user.get("name", ""))

        async def tell(**message: Any) -> None:
            case = await deps.gitops.case(key) if deps.gitops is not None else None
            channel = (case.channel if case else None) or (
                deps.responder.service(case.service).channel if case else None
            )
            if channel:
                await deps.chat.post_ephemeral(
                    channel, who.id, text=message["text"], blocks=message.get("blocks")
                )

        async def job() -> None:
            if deps.gitops is None:
                return
            await deps.gitops.confirm(key, who, shown=shown)

        deps.work.submit(job, on_error=errors.reporter(tell, what="Tier 3 push"))

    @app.action(tiers.TIER3_APPROVE_ACTION_ID)
    async def on_approve(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        raw = action.get("value", "")
        user = body.get("user") or {}

        async def tell(**message: Any) -> None:
            await respond(response_type="ephemeral", replace_original=False, **message)

        async def job() -> None:
            value = parse_value(raw)
            if deps.gitops is None or value.get("r") is None:
                raise InvalidRequest("rollbot does not run Tier 3 for this service.")
            who = await actor(
                deps, user.get("id", ""), user.get("username") or user.get("name", "")
            )
            case = await deps.gitops.case_for(str(value["s"]), int(value["r"]))
            if case is None:
                raise InvalidRequest("This Tier 3 revert is not known (any more).")
            try:
                moved = await deps.gitops.approve(case.key, who)
            except NotAuthorised as err:
                if case.requester != who.id or case.state is not RevertState.OPENED:
                    raise
                # Refused (and audited) for want of a second person: break glass is offered.
                await tell(
                    text=f":no_entry: {err.message}",
                    blocks=replies.tier3_self_approval_blocks(
                        f":no_entry: {err.message} Break glass is loud: your reason goes to "
                        "the channel, the audit log and the merge commit.",
                        key=case.key,
                    ),
                )
                return
            if moved.approver != who.id:
                await tell(text=under_way(moved))

        deps.work.submit(job, on_error=errors.reporter(tell, what="Tier 3 approval"))

    @app.action(BREAK_GLASS_ACTION_ID)
    async def on_break_glass_open(
        ack: Any, action: dict[str, Any], body: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        async with errors.after_ack(respond, what="Tier 3 break-glass click"):
            key = str(action.get("value") or "")
            case = await deps.gitops.case(key) if deps.gitops is not None and key else None
            if case is None:
                raise InvalidRequest("This Tier 3 revert is not known (any more).")
            cfg = deps.responder.service(case.service)
            view = modals.tier3_break_glass_modal(
                case,
                channel=cfg.channel,
                owners_group=cfg.owners.slack_usergroup if cfg.owners else None,
            )
            await deps.chat.open_view(str(body.get("trigger_id") or ""), view)

    @app.view(modals.TIER3_BREAK_GLASS_CALLBACK_ID)
    async def on_break_glass(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        reason = value_of(
            view, modals.BREAK_GLASS_REASON_BLOCK_ID, modals.BREAK_GLASS_REASON_ACTION_ID
        ).strip()
        if len(reason) < modals.BREAK_GLASS_MIN_REASON:
            await ack(
                response_action="errors",
                errors={
                    modals.BREAK_GLASS_REASON_BLOCK_ID: f"Say why, in at least "
                    f"{modals.BREAK_GLASS_MIN_REASON} characters."
                },
            )
            return
        key = str(view.get("private_metadata") or "")
        user = body.get("user") or {}
        who = await actor(deps, user.get("id", ""), user.get("username") or user.get("name", ""))
        if deps.gitops is None:
            await ack()
            return
        try:
            case = await deps.gitops.case(key)
            if case is None:
                raise InvalidRequest("This Tier 3 revert is not known (any more).")
        except RollbotError as err:
            await ack(
                response_action="errors",
                errors={modals.BREAK_GLASS_REASON_BLOCK_ID: await plain(deps, err.message)},
            )
            return
        await ack()

        async def tell(**message: Any) -> None:
            channel = case.channel or deps.responder.service(case.service).channel
            await deps.chat.post_ephemeral(
                channel, who.id, text=message["text"], blocks=message.get("blocks")
            )

        async def job() -> None:
            assert deps.gitops is not None
            await deps.gitops.approve(key, who, break_glass_reason=reason)

        deps.work.submit(job, on_error=errors.reporter(tell, what="Tier 3 break-glass approval"))


def _commit_url(case: RevertCase) -> str | None:
    """The release commit's page on the host (what the revert undoes), when the clone URL
    is a web URL."""
    base = case.url[: -len(".git")] if case.url.endswith(".git") else case.url
    if not mrkdwn.is_web_url(base):
        return None
    return (
        f"{base}/-/commit/{case.release_sha}"
        if case.provider == "gitlab"
        else (f"{base}/commit/{case.release_sha}")
    )
