"""Fixtures for Slack: a started SlackSim seeded with the payments team, its secrets, and a
Bolt app served over real HTTP.

* ``slack_sim``: a started :class:`bot.sim.slack.SlackSim` (function scope) with the on-call
  engineer, an outsider, the ``payments-owners`` usergroup and ``#payments-deploys``;
* ``signing_secret`` / ``bot_token``: the secrets the sim and the apps share;
* ``serve_bolt``: ``url = await serve_bolt(app)`` serves a Bolt ``AsyncApp`` behind Bolt's own
  Starlette handler on uvicorn and gives the URL of its ``/slack/events``; stopped at the
  test's end. (rollbot's own ``/slack/events`` is `bot.web.slack.slack_route`, which verifies
  the signature and refuses replays before Bolt sees a request; the integration tests that
  exercise listeners, or the sim's sender against a plain Bolt app, need only Bolt's handler.)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from bot.sim.slack import SlackSim
from tests.helpers import serving

ServeBolt = Callable[[AsyncApp], Awaitable[str]]


@pytest.fixture
def signing_secret() -> str:
    return "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def bot_token() -> str:
    return "xoxb-test-0000000000-rollbot"


def seed_payments(sim: SlackSim) -> SlackSim:
    """The workspace every test starts from: an on-call engineer, an outsider, one channel."""
    sim.add_user(
        "U0ONCALL", "oncall-engineer", real_name="On-call Engineer", email="oncall@example.com"
    )
    sim.add_user("U0OUTSIDER", "outsider", real_name="Out Sider", email="outsider@example.com")
    sim.add_usergroup("S0PAYMENTS", "payments-owners", ["U0ONCALL"])
    sim.add_channel("C0PAYDEPLOY", "#payments-deploys")
    return sim


@pytest.fixture
def slack_sim() -> Iterator[SlackSim]:
    with SlackSim() as sim:
        yield seed_payments(sim)


@contextlib.asynccontextmanager
async def bolt_on_uvicorn(app: AsyncApp) -> AsyncIterator[str]:
    """`app` at ``POST /slack/events`` on uvicorn, on a loopback socket bound before the
    server starts (the kernel picks the port: nothing can take it in between); yields the
    URL, stops the server on exit."""
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Any:
        return await handler.handle(request)

    app_ = Starlette(routes=[Route("/slack/events", events, methods=["POST"])])
    async with serving(app_) as url:
        yield f"{url}/slack/events"


@pytest.fixture
async def serve_bolt() -> AsyncIterator[ServeBolt]:
    """``url = await serve_bolt(app)``: see the module docstring."""
    async with contextlib.AsyncExitStack() as stack:

        async def serve(app: AsyncApp) -> str:
            return await stack.enter_async_context(bolt_on_uvicorn(app))

        yield serve
