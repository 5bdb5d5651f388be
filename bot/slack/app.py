"""The Bolt app factory: `create_bolt_app(...)` with the client passed in, no globals."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import errors
from bot.slack.listeners import Deps, register_listeners


class NoBodies(logging.Filter):
    """Bolt warns about a request no listener handled by printing the request's body (signed,
    but its text is still the sender's: a user's typed words, a modal's inputs). The line
    keeps its news and loses the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (
            message.startswith("Unhandled request")
            or "providing a response for the request" in message
        ):
            record.msg, record.args = "Unhandled request: no listener matched (body not logged)", ()
        return True


def _quiet_bodies() -> None:
    logger = logging.getLogger("slack_bolt.AsyncApp")  # Bolt's framework logger for AsyncApp
    if not any(isinstance(f, NoBodies) for f in logger.filters):
        logger.addFilter(NoBodies())


def create_bolt_app(*, signing_secret: str, client: AsyncWebClient, deps: Deps) -> AsyncApp:
    _quiet_bodies()
    app = AsyncApp(
        signing_secret=signing_secret,
        client=client,
        # Answer Slack as soon as a listener acks; the work goes on after the ack.
        process_before_response=False,
    )
    errors.register(app)
    register_listeners(app, deps)
    return app
