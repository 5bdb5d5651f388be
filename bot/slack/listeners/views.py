"""Modal submissions: `revert_record`, the Tier 3 revert modal (opened by `revert_open`),
and `circuit_break_glass`, the Tier 2 break-glass modal (opened from a refused circuit
click's "Break glass…" button).

Slack waits 3 s for the answer to a `view_submission`, and the answer decides what the
person sees: `response_action="errors"` keeps the modal open with a message under the
input block; an empty ack closes it. So what can be refused is checked before the ack (a
URL that is not http(s), a service no longer configured, someone the service's Tier 1
guard refuses: the refusal is audited; when that check takes longer than
`AUTHORISE_BUDGET_SECONDS` the modal is closed and it is made after the ack, a refusal then
told to the submitter alone); the recording itself (audit entry, thread line, the card,
PagerDuty note) runs after the ack on the work queue, once per card revision, and its
answer is told to the submitter alone in the card's channel: the confirmation, or for a
second record (another person, a second modal) who started the first, when, with its link.
Slack's retry of a submission is recorded once and answered once (by the first delivery).

The break-glass modal checks only its reason before the ack (at least
`modals.BREAK_GLASS_MIN_REASON` characters, else an error under `break_glass_reason`); the
flip then runs on the work queue as `/rollback SERVICE circuit open break-glass REASON`
does (the same policy, audit and loud channel notice), keyed on the view id and hash as
well, and its result or refusal is told to the submitter alone in the card's channel.
Then, however the flip ended, the refusal that carried the "Break glass…" button is
rewritten through that click's response_url (in the modal's `private_metadata`) with
`replace_original`: one line saying break glass was used, when, and how it ended, and no
button to invite a second use. Slack's retry of the submission rewrites nothing (the first
delivery did). A modal closed with Cancel tells rollbot nothing, so that refusal keeps its
button. The rewrite is best effort, on the work queue after the answer: a response_url
Slack no longer takes (30 minutes, five uses) is logged, and the flip's answer stands.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncRespond

from bot.actions import ActionResult, FlagRequest, RevertRequest
from bot.blocks import modals, replies
from bot.core import mrkdwn
from bot.core.errors import NotAuthorised, RollbotError
from bot.core.model import FlagAction
from bot.core.tiers import is_revert_url
from bot.slack import errors
from bot.slack.listeners.common import actor, redelivered, retry_num, run_and_tell
from bot.slack.listeners.deps import Deps

#: Of Slack's 3 s for answering a view_submission, what the authorisation (which may ask
#: Slack and PagerDuty who is on call) may take before the modal is closed without it.
AUTHORISE_BUDGET_SECONDS = 2.0
URL_ERROR = "Give the revert's commit or pull request URL (https://…)."
REASON_ERROR = (
    f"Say why this cannot wait for the on-call, in at least {modals.BREAK_GLASS_MIN_REASON} "
    "characters: it goes to the channel and the audit log."
)
_USER = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|@?([^>]*))?>")

log = logging.getLogger(__name__)


def answered_already(req: RevertRequest, result: ActionResult) -> bool:
    """Whether `result` is the duplicate of a submission Slack re-sent (the same person's,
    retried or the same view id and hash): its first delivery tells the submitter."""
    winner = result.record
    if result.status != "duplicate" or winner is None or winner.actor_id != req.actor.id:
        return False
    return req.retry_num > 0 or winner.result.get("submission") == req.submission


def ended(error: BaseException) -> tuple[str, str | None]:
    """How a flip that raised `error` ended, for `replies.break_glass_used_message`."""
    if isinstance(error, NotAuthorised):
        return "refused", None
    if isinstance(error, RollbotError):
        return "error", error.message
    return "error", None


async def retire_break_glass(
    response_url: str, *, at: datetime, status: str, error: str | None
) -> None:
    """Rewrite the refusal whose "Break glass…" click gave `response_url`: no button left."""
    text, blocks = replies.break_glass_used_message(at=at, status=status, error=error)
    answer = await AsyncRespond(response_url=response_url)(
        text=text, blocks=blocks, response_type="ephemeral", replace_original=True
    )
    if answer.status_code != 200:
        log.warning(
            "the break-glass refusal was not rewritten: Slack answered HTTP %s (%s)",
            answer.status_code,
            mrkdwn.clip(str(answer.body), 100),
        )


async def _not_retired(error: BaseException) -> None:
    log.warning("the break-glass refusal was not rewritten: %s", type(error).__name__)


def value_of(view: dict[str, Any], block_id: str, action_id: str) -> str:
    """A plain_text_input's value from a submitted view's state ("" when empty, or when
    the state is not shaped as Slack sends it: a signed body could hold anything there)."""
    found: Any = view
    for key in ("state", "values", block_id, action_id, "value"):
        found = found.get(key) if isinstance(found, dict) else None
    return found if isinstance(found, str) else ""


async def plain(deps: Deps, text: str) -> str:
    """Modal errors are plain text: mentions become names, usergroups their handle or id,
    entities and mrkdwn markers the characters they stand for."""
    names: dict[str, str] = {}
    for user_id in set(_USER.findall(text)):
        try:
            names[user_id] = await deps.chat.user_name(user_id)
        except RollbotError:
            names[user_id] = user_id
    text = _USER.sub(lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = _GROUP.sub(lambda m: "@" + (m.group(2) or f"usergroup {m.group(1)}"), text)
    text = text.replace("`", "").replace("*", "")
    return mrkdwn.unescape(text)


def register(app: AsyncApp, deps: Deps) -> None:
    @app.view(modals.REVERT_CALLBACK_ID)
    async def on_revert_record(
        ack: Any, body: dict[str, Any], view: dict[str, Any], request: Any
    ) -> None:
        url = value_of(view, modals.REVERT_URL_BLOCK_ID, modals.REVERT_URL_ACTION_ID).strip()
        note = value_of(view, modals.REVERT_NOTE_BLOCK_ID, modals.REVERT_NOTE_ACTION_ID).strip()
        if not is_revert_url(url):
            await ack(response_action="errors", errors={modals.REVERT_URL_BLOCK_ID: URL_ERROR})
            return
        try:
            meta = modals.parse_revert_metadata(str(view.get("private_metadata") or ""))
        except (ValueError, TypeError):
            await ack(
                response_action="errors",
                errors={
                    modals.REVERT_URL_BLOCK_ID: "This form is not one rollbot made: open it "
                    "again from the card's “Record Tier 3 revert…” button."
                },
            )
            return
        user = body.get("user") or {}
        who = await actor(deps, user.get("id", ""), user.get("username") or user.get("name", ""))
        req = RevertRequest(
            service=meta["s"],
            actor=who,
            url=url,
            note=note,
            revision=int(meta["r"]) if meta.get("r") is not None else None,
            epoch=int(meta["e"]) if meta.get("e") is not None else None,
            channel=meta.get("c") or None,
            message_ts=meta.get("ts") or None,
            submission=f"{view.get('id', '')}#{view.get('hash', '')}",
            retry_num=retry_num(request),
        )
        decision: Any = None
        try:
            decision = await asyncio.wait_for(
                deps.responder.authorise_revert(req), timeout=AUTHORISE_BUDGET_SECONDS
            )
        except TimeoutError:
            # Slack gives up on the submission after 3 s: close the modal now and decide
            # on the work queue; a refusal then reaches the submitter as an ephemeral.
            decision = None
        except RollbotError as err:  # unknown service, refused, Slack/PagerDuty unreadable
            await ack(
                response_action="errors",
                errors={modals.REVERT_URL_BLOCK_ID: await plain(deps, err.message)},
            )
            return
        await ack()

        async def tell(**message: Any) -> None:
            """After the ack: only the submitter sees it, in the card's channel."""
            channel = req.channel or deps.responder.service(req.service).channel
            await deps.chat.post_ephemeral(
                channel, who.id, text=message["text"], blocks=message.get("blocks")
            )

        async def job() -> None:
            result = await deps.responder.record_revert(req, decision=decision)
            if answered_already(req, result):
                return
            icon = ":white_check_mark:" if result.status == "succeeded" else ":information_source:"
            await tell(text=f"{icon} {result.message}")

        deps.work.submit(job, on_error=errors.reporter(tell, what="record revert"))

    @app.view(modals.BREAK_GLASS_CALLBACK_ID)
    async def on_break_glass(
        ack: Any, body: dict[str, Any], view: dict[str, Any], request: Any
    ) -> None:
        reason = value_of(
            view, modals.BREAK_GLASS_REASON_BLOCK_ID, modals.BREAK_GLASS_REASON_ACTION_ID
        ).strip()
        if len(reason) < modals.BREAK_GLASS_MIN_REASON:
            await ack(
                response_action="errors", errors={modals.BREAK_GLASS_REASON_BLOCK_ID: REASON_ERROR}
            )
            return
        try:
            meta = modals.parse_break_glass_metadata(str(view.get("private_metadata") or ""))
        except (ValueError, TypeError):
            await ack(
                response_action="errors",
                errors={
                    modals.BREAK_GLASS_REASON_BLOCK_ID: "This form is not one rollbot made: "
                    "click the card's “Open circuit breaker (Tier 2)” button again."
                },
            )
            return
        # Authorising may ask Slack and PagerDuty: after the ack; the flip tells a refusal.
        await ack()
        user = body.get("user") or {}
        service = str(meta["s"])
        submission = f"{view.get('id', '')}#{view.get('hash', '')}"
        retries = retry_num(request)
        used_at = datetime.now(UTC)
        response_url = meta.get("u")

        def retire(status: str, error: str | None = None) -> None:
            """After the flip: the refusal's button goes (its own job: a failure to
            rewrite is logged and never reported as the flip's)."""
            if response_url is None:
                return
            deps.work.submit(
                lambda: retire_break_glass(response_url, at=used_at, status=status, error=error),
                on_error=_not_retired,
            )

        async def tell(**message: Any) -> None:
            """Only the submitter sees the result, in the card's channel."""
            channel = meta.get("c") or deps.responder.service(service).channel
            await deps.chat.post_ephemeral(
                channel, str(user.get("id", "")), text=message["text"], blocks=message.get("blocks")
            )

        async def job() -> None:
            who = await actor(
                deps, user.get("id", ""), user.get("username") or user.get("name", "")
            )
            req = FlagRequest(
                service=service,
                action=FlagAction.CIRCUIT_OPEN,
                actor=who,
                break_glass_reason=reason,
                retry_num=retries,
                submission=submission,
            )
            try:
                result = await run_and_tell(deps, req, tell)
            except Exception as err:
                retire(*ended(err))
                raise  # told by the reporter
            if not redelivered(req, result):
                retire(result.status)

        deps.work.submit(job, on_error=errors.reporter(tell, what="break-glass circuit-open"))
