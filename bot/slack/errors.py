"""The one error handler for Slack, and the one way a listener's errors are told.

Domain errors (`RollbotError`) become an ephemeral message the user can act on: the typed
error's own message says what is wrong and what to do. Anything else is logged with an id
the user can quote, and the user gets that id. Besides the refusals a listener answers in
its ack (a malformed command, a modal's `response_action: errors`), three places tell an
error, all through `report`:

- `register`: Bolt's error handler, for what a listener raises before it acks;
- `after_ack`: around what a listener does itself once it has acked (reading a button's
  value, opening a modal within the trigger's 3 s): told, never raised;
- `reporter`: for the work a listener leaves on the queue (bot.runtime.work).

A listener must not raise after `ack()`: slack-bolt's asyncio runner then sets the ack's
response back to what its error handler was given, None once acked, and answers Slack from
the ack only if its 10 ms poll saw it first. When the error was told quickly, it had not:
over HTTP Bolt answered 404 after 3 s ("didn't call ack()"), over Socket Mode no ack was
sent, and Slack showed the person an error although they had just been told what was wrong.

An error's message is plain text (backticks aside) and often quotes an outside service
(Kubernetes' status message, PagerDuty's or Jira's error, a transport error) or what the
user typed, so it is escaped here. A refusal (`NotAuthorised`) is the exception: its
message is mrkdwn written by `bot.core.policy`, naming who may act as mentions, with the
outside words in it already escaped.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.blocks import replies
from bot.core import mrkdwn
from bot.core.errors import NotAuthorised, RollbotError, TemporaryError
from bot.slack.verified import VERIFIED

log = logging.getLogger(__name__)


def message_for(error: BaseException) -> tuple[str, str | None]:
    """(mrkdwn for the user, error id when it was unexpected)."""
    if isinstance(error, NotAuthorised):
        return f":no_entry: {error.message}", None
    if isinstance(error, TemporaryError):
        text = mrkdwn.escape(error.message)
        return f":warning: {text} Nothing was changed; try again shortly.", None
    if isinstance(error, RollbotError):
        return f":warning: {mrkdwn.escape(error.message)}", None
    error_id = secrets.token_hex(4)
    return (
        f":boom: Something went wrong inside rollbot (error id `{error_id}`). "
        "Check the card's thread for what was done; quote the id to the rollbot owners.",
        error_id,
    )


async def report(
    error: BaseException, respond: Any, *, what: str = "", break_glass: str | None = None
) -> None:
    """Tell the person who asked; log the unexpected with an id they can quote.

    `break_glass` (a `replies.break_glass_value`): a circuit click's refusal that only wants
    break-glass offers the "Break glass…" button with it."""
    text, error_id = message_for(error)
    if error_id is not None:
        log.error("unexpected error %s handling %s", error_id, what, exc_info=error)
    else:
        log.info("refused: %s", text)
    if break_glass is not None and isinstance(error, NotAuthorised):
        shown = replies.circuit_refusal_blocks(
            text, break_glass=break_glass if error.break_glass_possible else None
        )
    else:
        shown = replies.error_blocks(text, error_id=error_id)
    if respond is not None:
        await respond(
            text=text,
            blocks=shown,
            response_type="ephemeral",
            replace_original=False,
        )


def reporter(
    respond: Any, *, what: str = "", break_glass: str | None = None
) -> Callable[[BaseException], Awaitable[None]]:
    """The error reporter for work continued after the ack (bot.runtime.work)."""

    async def _report(error: BaseException) -> None:
        await report(error, respond, what=what, break_glass=break_glass)

    return _report


@contextlib.asynccontextmanager
async def after_ack(
    respond: Any, *, what: str = "", break_glass: str | None = None
) -> AsyncIterator[None]:
    """Around what a listener does itself after its ack: an error in it is told to the
    person (`report`, as `reporter` tells the queued work's), and never raised to Bolt (see
    the module). A failure to tell it is logged."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - boundary: told with an id, never raised to Bolt
        try:
            await report(err, respond, what=what, break_glass=break_glass)
        except Exception:
            log.exception("could not report an error handling %s", what, exc_info=err)


def register(app: AsyncApp) -> None:
    @app.error
    async def handle_error(
        error: Exception, body: dict[str, Any], respond: Any, context: Any
    ) -> None:
        if not context.get(VERIFIED):
            # Never act on an unverified request: no response_url, user or channel of it.
            log.warning("error on an unverified Slack request: %s", type(error).__name__)
            return
        # A request with no response_url (a view submission, an event) has nobody to
        # answer here: Bolt's `respond` would raise, and the error would escape as a 500.
        answer = respond if context.response_url else None
        await report(error, answer, what=str(body.get("type") or body.get("command")))
