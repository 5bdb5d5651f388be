"""Socket Mode: Slack's requests over a WebSocket rollbot opens, instead of (or beside)
`POST /slack/events`, for a Slack app that has no public Request URL.

    leader ── apps.connections.open (app-level token) ──► Slack: a wss:// URL
           ◄── hello, then envelopes {envelope_id, type, payload, …} ── Slack
           ── ack {envelope_id, payload?} within 3 s ──► Slack

`SlackSocket.run` holds the connection: slack-bolt's `AsyncSocketModeHandler` over slack_sdk's
aiohttp `SocketModeClient` (aiohttp is already the Web API client's transport, so Socket
Mode adds no dependency). The client reconnects by itself when Slack asks (``disconnect``,
``refresh_requested``) or the link drops; `run` ends, closing it, when cancelled.

Only the leader runs it (`bot.wiring.Rollbot._start_background`): Slack spreads an app's
envelopes across all its open connections (at most 10 per app), so one connection per
deployment, whatever its replicas, is one place where Slack's requests arrive, counted by
one gauge, refreshed by one client. When the lease is lost, or at shutdown, the task is
cancelled and the connection closed (a close handshake); the next leader connects after a
failover, and Slack's requests in between fail as against an HTTP endpoint that is down.

Per envelope (`_Handler.handle`), as `bot.web.slack` does per HTTP request:

1. The payload must be shaped as Slack shapes it (`bot.slack.shapes`); otherwise it is
   logged (why, never what) and not acked, as the HTTP edge answers 400.
2. Bolt runs the listeners with the same context marks (`bot.slack.verified`): `VERIFIED`,
   since only Slack writes to a connection the app-level token opened (an envelope carries
   no signature to check), so the error handler answers it; and `ENVELOPE`, its id, so a
   slash command's work runs once however often the envelope is delivered
   (`bot.slack.listeners.common.once`, the same record as the signatures). Slack's
   ``retry_attempt`` becomes ``X-Slack-Retry-Num`` as over HTTP (Bolt's `build_headers`).
3. The ack is Bolt's answer (Bolt's `send_async_response`): empty, or its body as the
   envelope's payload (a slash command's reply, a view submission's ``response_action``).
   The listeners ack first and work after (``process_before_response=False``), so the ack
   leaves within Slack's 3 s as over HTTP.

The envelope id is the request id of every log line its handling writes, the work it
queues included (`bot.runtime.logs`), as an HTTP request's id is.

slack_sdk logs each envelope's body at DEBUG; on its logger here (`SDK_LOGGER`) DEBUG lines
are dropped, so no request body reaches a log line at any level, as over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.runtime import logs
from bot.slack import shapes
from bot.slack.verified import ENVELOPE, VERIFIED

__all__ = ["SDK_LOGGER", "SlackSocket"]

log = logging.getLogger(__name__)

#: slack_sdk's Socket Mode client logs here (connects, reconnects, failures; never bodies).
SDK_LOGGER = f"{__name__}.client"


class _NoDebug(logging.Filter):
    """slack_sdk's Socket Mode client writes every message it receives or sends, bodies
    included, at DEBUG: those lines are dropped, the rest (INFO and up) kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


class _Handler(AsyncSocketModeHandler):
    """Bolt's handler, dispatching each envelope as `bot.web.slack` dispatches a request."""

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        # The envelope is this request: its id is the log lines' request id, as an HTTP
        # request's is (bot.runtime.logs), and the work it queues keeps it.
        with logs.bound(request_id=logs.request_id(req.envelope_id)):
            await self._handle(client, req)

    async def _handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        started = time.time()
        body: Any = req.payload
        problem = shapes.shape_problem(body) if shapes.is_object(body) else "not a JSON object"
        request: AsyncBoltRequest | None = None
        if problem is None:
            try:
                request = AsyncBoltRequest(
                    mode="socket_mode",
                    body=body,
                    headers=build_headers(req),
                    context={VERIFIED: True, ENVELOPE: req.envelope_id},
                )
            except (ValueError, TypeError, AttributeError, KeyError, IndexError):
                problem = "unreadable"  # Bolt reads team, user and channel as it parses
        if request is None:
            log.warning("Socket Mode envelope not acknowledged: not a Slack payload: %s", problem)
            return
        response = await self.app.async_dispatch(request)
        await send_async_response(client, req, response, started)


class SlackSocket:
    """The leader's Socket Mode connection (see the module): `await run()` until cancelled.

    `on_open(True/False)`: told when Slack's ``hello`` arrives and when the link is asked
    to close or is closed (the `rollbot_slack_socket_open` gauge)."""

    def __init__(
        self,
        *,
        bolt: AsyncApp,
        app_token: str,
        ping_interval: float = 10.0,
        on_open: Callable[[bool], None] | None = None,
    ) -> None:
        self.bolt = bolt
        self._app_token = app_token
        self.ping_interval = ping_interval
        self._on_open = on_open or (lambda _open: None)
        self._sdk_log = logging.getLogger(SDK_LOGGER)
        if not any(isinstance(f, _NoDebug) for f in self._sdk_log.filters):
            self._sdk_log.addFilter(_NoDebug())

    async def run(self) -> None:
        """Connect (retrying until Slack answers: a refused app token is logged by the
        client at every attempt), then hold the connection until cancelled; close it."""
        handler = _Handler(
            self.bolt,
            app_token=self._app_token,
            logger=self._sdk_log,
            ping_interval=self.ping_interval,
        )
        handler.client.on_message_listeners.append(self._watch)
        handler.client.on_close_listeners.append(self._closed)
        log.info("Socket Mode: connecting to Slack (apps.connections.open)")
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
            await asyncio.Event().wait()  # until cancelled: the leader's work has ended
        finally:
            self._on_open(False)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    handler.close_async(),  # type: ignore[no-untyped-call]
                    timeout=5,
                )
            log.info("Socket Mode: connection closed")

    async def _watch(self, message: Any) -> None:
        """Slack's own messages on the link (aiohttp's `WSMessage`, every text one):
        ``hello`` (connected) and ``disconnect``."""
        try:
            data = json.loads(message.data)
        except (TypeError, ValueError):
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "hello":
            self._on_open(True)
            log.info(
                "Socket Mode: connected (%s connection(s) open for the app)",
                data.get("num_connections", "?"),
            )
        elif kind == "disconnect":
            self._on_open(False)
            reason = str(data.get("reason") or "?")
            if reason == "link_disabled":
                log.error(
                    "Socket Mode: Slack closed the connection (link_disabled): Socket Mode is "
                    "off in the Slack app's settings; turn it on, or serve /slack/events"
                )
            else:
                log.info("Socket Mode: Slack asked to reconnect (%s)", reason)

    async def _closed(self, _message: Any) -> None:
        """The link was closed by Slack (a close frame): not open until the next hello."""
        self._on_open(False)
