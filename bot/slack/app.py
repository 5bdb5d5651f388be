"""The Bolt app factory: `create_bolt_app(...)` with the client passed in, no globals."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import errors
from bot.slack.listeners import Deps, register_listeners


def create_bolt_app(*, signing_secret: str, client: AsyncWebClient, deps: Deps) -> AsyncApp:
    app = AsyncApp(
        signing_secret=signing_secret,
        client=client,
        # Answer Slack as soon as a listener acks; the work goes on after the ack.
        process_before_response=False,
    )
    errors.register(app)
    register_listeners(app, deps)
    return app
