"""The Slack sim's Socket Mode (bot.sim.slack.socket_mode) against Slack's documented
behaviour, driven by real clients: slack_sdk's AsyncWebClient and aiohttp SocketModeClient,
slack-bolt's AsyncSocketModeHandler, and a bare aiohttp WebSocket where the wire itself is
under test.

Aspects under test:
- apps.connections.open answers the app-level token with a ``ws://`` URL on loopback; no
  token is ``not_authed``, a bot token ``not_allowed_token_type``, another or a refused
  (`set_token_valid`) app token ``invalid_auth``; the token stays out of the record;
- the link: ``hello`` first (``num_connections``, ``debug_info``, ``connection_info.app_id``);
  a URL's ticket opens one link only; `open_connections` counts the open ones; a link the
  app closed has close code 1000 (one that dropped, 1006: tests/e2e/test_socket_mode.py);
- envelopes as Slack sends them: a slash command (``slash_commands``, the form's fields,
  accepts a response payload), a click (``interactive``, ``block_actions``, no response
  payload), a view submission (``interactive``, accepts one), an event (``events_api``, with
  ``retry_attempt``/``retry_reason``, a retry's attempt carried); the ack's payload is the
  sender's answer; sending one request twice redelivers the same envelope id;
- acks: on time, late (after the deadline) and missing are recorded as such; the sender
  raises when none comes; an ack of an unknown envelope is kept as stray;
- Slack spreads envelopes round-robin across the open links; with none open, NoConnection;
- ``disconnect``: ``refresh_requested`` makes slack_sdk's client open a new link (a second
  apps.connections.open) and close the old, and the next envelope goes over the new one;
  ``link_disabled`` closes the link from Slack's side; an unknown reason is refused;
- a plain Bolt app on slack-bolt's AsyncSocketModeHandler gets the sender's slash command
  and click, its ack text comes back as the answer and its respond() reaches the sim's
  response_url.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import APP_ID, NoConnection, SlackSender, SlackSim
from tests.helpers import eventually
from tests.plugins.slack import seed_payments

pytestmark = pytest.mark.timeout(60)

APP_TOKEN = "xapp-1-A0ROLLBOT-1234-socketmodetest"
CARD = {
    "ts": "1700000000.000100",
    "text": "card",
    "blocks": [
        {
            "type": "actions",
            "block_id": "act",
            "elements": [
                {
                    "type": "button",
                    "action_id": "rollout_abort",
                    "value": "v",
                    "text": {"type": "plain_text", "text": "Abort"},
                }
            ],
        }
    ],
}


@pytest.fixture
def sim() -> Iterator[SlackSim]:
    with SlackSim(app_token=APP_TOKEN) as slack:
        yield seed_payments(slack)


def sender(sim: SlackSim, *, timeout: float = 5.0) -> SlackSender:
    return SlackSender(
        "http://unused/slack/events", "unused", sim=sim, socket_mode=True, timeout=timeout
    )


async def open_url(sim: SlackSim) -> str:
    answer = await AsyncWebClient(base_url=sim.api_url).apps_connections_open(app_token=APP_TOKEN)
    return str(answer["url"])


class RawLink:
    """A bare WebSocket to the sim: what Slack sends, as text; acks sent by hand."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session, self.ws = session, ws

    @classmethod
    async def open(cls, url: str) -> RawLink:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url)
        except BaseException:
            await session.close()
            raise
        return cls(session, ws)

    async def receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive(), timeout=5)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        decoded: dict[str, Any] = json.loads(message.data)
        return decoded

    async def ack(self, envelope_id: str, payload: dict[str, Any] | None = None) -> None:
        ack: dict[str, Any] = {"envelope_id": envelope_id}
        if payload is not None:
            ack["payload"] = payload
        await self.ws.send_json(ack)

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


# ------------------------------------------------------------------- apps.connections.open


async def test_connections_open_answers_the_app_token_with_a_loopback_ws_url(sim: SlackSim):
    url = await open_url(sim)
    parts = urlsplit(url)
    assert parts.scheme == "ws" and parts.hostname == "127.0.0.1"
    assert parse_qs(parts.query)["app_id"] == [APP_ID]
    assert parse_qs(parts.query)["ticket"][0]
    (call,) = sim.calls_to("apps.connections.open")
    assert call.method == "POST" and call.response == {"ok": True, "url": url}
    assert APP_TOKEN not in json.dumps(call.body) + call.raw.decode()

    async def refused(token: str) -> str:
        with pytest.raises(SlackApiError) as caught:
            await AsyncWebClient(base_url=sim.api_url).apps_connections_open(app_token=token)
        return str(caught.value.response["error"])

    assert await refused("xoxb-test-0000000000-rollbot") == "not_allowed_token_type"
    assert await refused("xapp-1-A0OTHER-9999-nottheapp") == "invalid_auth"
    async with httpx.AsyncClient() as client:
        bare = await client.post(sim.api_url + "apps.connections.open")
    assert bare.json() == {"ok": False, "error": "not_authed"}
    sim.set_token_valid(APP_TOKEN, False)
    assert await refused(APP_TOKEN) == "invalid_auth"
    sim.set_token_valid(APP_TOKEN, True)
    assert (await open_url(sim)).startswith("ws://127.0.0.1:")


# ----------------------------------------------------------------------------- the link


async def test_hello_comes_first_and_a_ticket_opens_one_link(sim: SlackSim):
    url = await open_url(sim)
    first = await RawLink.open(url)
    try:
        hello = await first.receive()
        assert hello["type"] == "hello"
        assert hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": APP_ID}
        assert hello["debug_info"]["host"] and hello["debug_info"]["approximate_connection_time"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await RawLink.open(url)  # the same ticket again
        assert refused.value.status == 401
        second = await RawLink.open(await open_url(sim))
        try:
            assert (await second.receive())["num_connections"] == 2
            assert sim.socket.open_connections == 2
        finally:
            await second.close()
        await eventually(lambda: sim.socket.open_connections == 1, what="the second link closed")
    finally:
        await first.close()
    await eventually(lambda: sim.socket.open_connections == 0, what="both links closed")
    assert all(c.closed_at is not None for c in sim.socket.connections)
    assert [c.close_code for c in sim.socket.connections] == [1000, 1000]  # closed by the app


# ----------------------------------------------------------------------------- envelopes and acks


async def test_envelopes_carry_each_request_as_slack_documents(sim: SlackSim):
    link = await RawLink.open(await open_url(sim))
    try:
        await link.receive()  # hello
        send = sender(sim)

        command = send.slash_command("U0ONCALL", "oncall-engineer", "payment-router")
        answering = asyncio.create_task(command.send())
        envelope = await link.receive()
        assert set(envelope) == {"envelope_id", "payload", "type", "accepts_response_payload"}
        assert envelope["type"] == "slash_commands"
        assert envelope["accepts_response_payload"] is True
        assert envelope["envelope_id"] == command.envelope_id
        payload = envelope["payload"]
        assert payload["command"] == "/rollback" and payload["text"] == "payment-router"
        assert payload["user_id"] == "U0ONCALL" and payload["response_url"].startswith("http")
        await link.ack(envelope["envelope_id"], {"text": "working on it"})
        answer = await answering
        assert answer.status_code == 200 and answer.json() == {"text": "working on it"}
        (record,) = sim.socket.envelopes
        assert record.ack_payload == {"text": "working on it"}
        assert record.ack_seconds is not None and not record.late and not record.missing

        click = asyncio.create_task(
            send.click("U0ONCALL", "rollout_abort", "v", message=CARD).send()
        )
        envelope = await link.receive()
        assert envelope["type"] == "interactive"
        assert envelope["accepts_response_payload"] is False
        assert envelope["payload"]["type"] == "block_actions"
        assert envelope["payload"]["actions"][0]["action_id"] == "rollout_abort"
        await link.ack(envelope["envelope_id"])
        assert (await click).content == b""

        view = {"id": "V1", "callback_id": "revert_record", "blocks": []}
        submission = asyncio.create_task(
            send.view_submission("U0ONCALL", view, {"b": {"a": "x"}}).send()
        )
        envelope = await link.receive()
        assert envelope["type"] == "interactive"
        assert envelope["payload"]["type"] == "view_submission"
        assert envelope["accepts_response_payload"] is True
        errors = {"response_action": "errors", "errors": {"b": "no"}}
        await link.ack(envelope["envelope_id"], errors)
        assert (await submission).json() == errors

        event = asyncio.create_task(send.app_home_opened("U0ONCALL").send())
        envelope = await link.receive()
        assert envelope["type"] == "events_api" and envelope["accepts_response_payload"] is False
        assert envelope["retry_attempt"] == 0 and envelope["retry_reason"] == ""
        assert envelope["payload"]["type"] == "event_callback"
        assert envelope["payload"]["event"]["type"] == "app_home_opened"
        await link.ack(envelope["envelope_id"])
        await event

        retried = asyncio.create_task(send.app_home_opened("U0ONCALL", retry_num=2).send())
        envelope = await link.receive()
        assert envelope["retry_attempt"] == 2 and envelope["retry_reason"] == "http_timeout"
        await link.ack(envelope["envelope_id"])
        await retried

        # The same request sent again: the same envelope, delivered again.
        again = asyncio.create_task(command.send())
        envelope = await link.receive()
        assert envelope["envelope_id"] == command.envelope_id
        await link.ack(envelope["envelope_id"])
        await again
        ids = [e.envelope_id for e in sim.socket.envelopes]
        assert ids.count(command.envelope_id) == 2
    finally:
        await link.close()


async def test_late_missing_and_stray_acks_are_recorded(sim: SlackSim):
    sim.socket.ack_deadline = 0.2
    link = await RawLink.open(await open_url(sim))
    try:
        await link.receive()  # hello
        # Waiting past the deadline (0.3 s > 0.2 s) is what makes an ack missing or late.
        unanswered = await sim.socket.deliver(
            "events_api", {"type": "x"}, accepts_response_payload=False, wait=0.3
        )
        await link.receive()
        assert unanswered.acked_at is None and unanswered.missing
        assert sim.socket.missing_acks == [unanswered]

        late = await sim.socket.deliver(
            "events_api", {"type": "y"}, accepts_response_payload=False, wait=0.3
        )
        envelope = await link.receive()
        assert late.acked_at is None  # the deadline passed before the ack
        await link.ack(envelope["envelope_id"])
        await eventually(lambda: late.acked_at is not None, what="the late ack recorded")
        assert late.late and not late.missing
        assert sim.socket.late_acks == [late]

        await link.ack("not-an-envelope")
        await eventually(lambda: sim.socket.stray_acks, what="the stray ack")
        assert sim.socket.stray_acks == [{"envelope_id": "not-an-envelope"}]

        with pytest.raises(TimeoutError, match="not acknowledged"):
            await sender(sim, timeout=0.2).slash_command("U0ONCALL", "oncall", "x").send()
        assert sim.socket.envelopes[-1].type == "slash_commands"
        assert sim.socket.envelopes[-1].acked_at is None
    finally:
        await link.close()


async def test_envelopes_are_spread_across_the_open_links(sim: SlackSim):
    with pytest.raises(NoConnection):
        await sender(sim).slash_command("U0ONCALL", "oncall", "x").send()
    links = [await RawLink.open(await open_url(sim)) for _ in range(2)]
    try:
        for link in links:
            await link.receive()  # hello
        got: list[int] = []
        for n in range(4):
            delivering = asyncio.create_task(
                sim.socket.deliver("events_api", {"n": n}, accepts_response_payload=False)
            )
            link = links[n % 2]
            envelope = await link.receive()
            assert envelope["payload"] == {"n": n}
            await link.ack(envelope["envelope_id"])
            got.append((await delivering).connection)
        first, second = (c.id for c in sim.socket.connections)
        assert got == [first, second, first, second]
    finally:
        for link in links:
            await link.close()
    await eventually(lambda: sim.socket.open_connections == 0, what="links closed")
    with pytest.raises(NoConnection):
        await sender(sim).slash_command("U0ONCALL", "oncall", "x").send()


# ----------------------------------------------------------------------------- disconnect


async def test_refresh_requested_makes_the_sdk_client_open_a_new_link(sim: SlackSim):
    client = SocketModeClient(
        app_token=APP_TOKEN, web_client=AsyncWebClient(base_url=sim.api_url), ping_interval=1
    )

    async def ack(c: Any, req: SocketModeRequest) -> None:
        await c.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload={"text": req.type})
        )

    client.socket_mode_request_listeners.append(ack)
    try:
        await client.connect()
        await eventually(lambda: sim.socket.open_connections == 1, what="the first link")
        answer = await sender(sim).slash_command("U0ONCALL", "oncall", "x").send()
        assert answer.json() == {"text": "slash_commands"}
        first = sim.socket.connections[0]

        assert await sim.socket.disconnect("refresh_requested") == 1
        await eventually(
            lambda: len(sim.socket.connections) == 2 and sim.socket.open_connections == 1,
            what="a new link, the old one closed",
        )
        assert first.disconnects == ["refresh_requested"] and first.closed_at is not None
        assert len(sim.calls_to("apps.connections.open")) == 2
        answer = await sender(sim).slash_command("U0ONCALL", "oncall", "x").send()
        assert answer.json() == {"text": "slash_commands"}
        assert sim.socket.envelopes[-1].connection == sim.socket.connections[1].id
    finally:
        await client.close()
    with pytest.raises(ValueError, match="reason must be one of"):
        await sim.socket.disconnect("bored")


async def test_link_disabled_closes_the_link_from_slacks_side(sim: SlackSim):
    link = await RawLink.open(await open_url(sim))
    try:
        await link.receive()  # hello
        assert await sim.socket.disconnect("link_disabled") == 1
        told = await link.receive()
        assert told["type"] == "disconnect" and told["reason"] == "link_disabled"
        assert told["debug_info"]["host"]
        closing = await asyncio.wait_for(link.ws.receive(), timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await eventually(lambda: sim.socket.open_connections == 0, what="the link closed")
    finally:
        await link.close()


# ----------------------------------------------------------------------------- a Bolt app


async def test_a_bolt_app_on_socket_mode_gets_commands_and_clicks(sim: SlackSim, bot_token: str):
    app = AsyncApp(
        client=AsyncWebClient(token=bot_token, base_url=sim.api_url), signing_secret="unused"
    )
    clicked: list[str] = []

    @app.command("/rollback")
    async def rollback(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack(text=f"got {command['text']}")
        await respond(text="later", response_type="ephemeral")

    @app.action("rollout_abort")
    async def abort(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        clicked.append(body["user"]["id"])

    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    try:
        await handler.connect_async()
        await eventually(lambda: sim.socket.open_connections == 1, what="Bolt's link")
        answer = await sender(sim).slash_command("U0ONCALL", "oncall", "payment-router").send()
        assert answer.status_code == 200 and answer.json()["text"] == "got payment-router"
        await eventually(lambda: sim.responses, what="respond() on the response_url")
        assert sim.responses[0].body["text"] == "later"
        clicked_answer = (
            await sender(sim).click("U0ONCALL", "rollout_abort", "v", message=CARD).send()
        )
        assert clicked_answer.status_code == 200
        assert await eventually(lambda: clicked, what="the click's listener") == ["U0ONCALL"]
    finally:
        await handler.close_async()
