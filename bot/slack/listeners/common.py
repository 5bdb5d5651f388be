"""What commands and buttons share: running an action and telling the person, and running
a slash command's work once per request however often Slack's request reaches us."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from bot.actions import ActionRequest, ActionResult, FlagRequest
from bot.core.errors import RollbotError
from bot.core.model import Actor
from bot.runtime.work import Job
from bot.slack.listeners.deps import Deps
from bot.slack.verified import ENVELOPE, SIGNATURE

log = logging.getLogger(__name__)


def seen_as(context: Any) -> str | None:
    """What makes this request the same as one seen before: its signature (HTTP), or its
    envelope id (Socket Mode: hashed, to fit the record whatever its length, and prefixed,
    so the two never meet); None: nothing to check."""
    if context is None:
        return None
    signature = context.get(SIGNATURE)
    if signature:
        return str(signature)
    envelope = context.get(ENVELOPE)
    if not envelope:
        return None
    return "envelope:" + hashlib.sha256(str(envelope).encode()).hexdigest()


def once(deps: Deps, context: Any, job: Job) -> Job:
    """`job`, run only the first time this request is seen (`seen_as`). A slash command
    replayed byte for byte within Slack's five minutes, or its envelope delivered again over
    Socket Mode, is acked like any other (the check is not on the ack's path: a database
    write there made every ack wait on it), and its work is skipped. Clicks and modal
    submissions carry their own idempotency keys."""
    key = seen_as(context)
    first_seen = deps.first_seen
    if not key or first_seen is None:
        return job

    async def guarded() -> object:
        if not await first_seen(key):
            log.warning("a replayed Slack request was acked and not run")
            return None
        return await job()

    return guarded


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


def redelivered(req: ActionRequest | FlagRequest, result: ActionResult) -> bool:
    """Whether `result` answers Slack's retry of `req`, whose first delivery answered."""
    return (
        result.status == "duplicate"
        and req.retry_num > 0
        and result.record is not None
        and result.record.actor_id == req.actor.id
    )


async def run_and_tell(deps: Deps, req: ActionRequest | FlagRequest, respond: Any) -> ActionResult:
    """Run `req` and tell the person its result (nothing for a redelivery: `redelivered`).

    An executed action's result is told as soon as it is settled, while the card is being
    told (the responder's `told`); one that executed nothing, once it is returned. A reply
    Slack does not take is raised once the action has returned, never through it: the
    action stays counted and reported as what it was."""
    told: list[ActionResult] = []
    failed: list[Exception] = []

    async def tell(result: ActionResult) -> None:
        told.append(result)
        if redelivered(req, result):
            # Slack re-sent the same request; the first delivery already answered.
            return
        icon = {
            "succeeded": ":white_check_mark:",
            "failed": ":x:",
            "duplicate": ":information_source:",
        }
        try:
            await respond(
                text=f"{icon.get(result.status, '')} {result.message}",
                response_type="ephemeral",
                replace_original=False,
            )
        except Exception as err:  # noqa: BLE001 - raised once the action returned
            failed.append(err)

    if isinstance(req, FlagRequest):
        result = await deps.responder.handle_flag(req, told=tell)
    else:
        result = await deps.responder.handle(req, told=tell)
    if not told:
        await tell(result)
    if failed:
        raise failed[0]
    return result
