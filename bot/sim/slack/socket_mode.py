"""The Slack sim's Socket Mode side: WebSocket links, envelopes and their acks.

Slack's Socket Mode (https://api.slack.com/apis/connections/socket), as this server plays it:

1. `apps.connections.open`, called with the app-level token (``xapp-…``; `SlackSim` checks
   it), answers a ``ws://`` URL on loopback carrying a one-use ``ticket`` (`mint_url`). A
   ticket unknown or already used is refused with HTTP 401 before the upgrade.
2. Once connected, the server sends ``hello``: ``num_connections`` (the app's open links,
   this one included), ``debug_info`` and ``connection_info.app_id``.
3. Each request Slack would POST to a Request URL is sent to one open connection instead
   (`deliver`), round-robin when several are open (Slack spreads envelopes across an app's
   connections), as an envelope: ``envelope_id``, ``type`` (``slash_commands``,
   ``interactive`` or ``events_api``), ``payload`` (the body Slack would have posted, as a
   JSON object) and ``accepts_response_payload`` (true for slash commands, view
   submissions and block suggestions, whose answer Slack uses); an ``events_api`` envelope
   also carries ``retry_attempt`` and ``retry_reason``.
4. The app acknowledges an envelope by sending ``{"envelope_id": …}``, with ``"payload"``
   when it answers (the slash command's reply, a view submission's ``response_action``).
   Slack expects the ack within 3 s (`ACK_DEADLINE`; `ack_deadline` for a test that
   cannot wait so long): every envelope is kept as an `Envelope` record with when it was
   acked and what with, a late ack marked `late`, a missing one `missing` once its deadline
   has passed.
5. ``disconnect`` (`disconnect(reason)`): ``refresh_requested`` and ``warning`` ask the app to
   open a new connection (apps.connections.open again); the old one is closed by the app,
   or by the server after `grace` seconds. ``link_disabled`` (Socket Mode turned off in the
   app's settings) and ``too_many_websockets`` close the connection at once.

Envelopes carry no signature: the app-level token authenticated the connection. The server
runs aiohttp's WebSocket server (slack_sdk's own Socket Mode tests fake Slack the same way)
on its own thread and event loop; `SlackSim` starts it with the first
apps.connections.open. The test-facing methods (`deliver`, `disconnect`) are coroutines of
the caller's loop; the records are read under a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from bot.sim.slack.workspace import APP_ID

__all__ = [
    "ACK_DEADLINE",
    "DISCONNECT_REASONS",
    "Envelope",
    "NoConnection",
    "SocketConnection",
    "SocketModeServer",
    "envelope_of",
]

T = TypeVar("T")

#: How long Slack waits for an envelope's ack (the 3 s every Slack request gets).
ACK_DEADLINE = 3.0
#: The ``disconnect`` reasons Slack documents.
DISCONNECT_REASONS = ("warning", "refresh_requested", "link_disabled", "too_many_websockets")
_CLOSING = ("link_disabled", "too_many_websockets")  # closed by the server at once
#: Interactive payload types whose ack payload Slack uses (`accepts_response_payload`).
_ANSWERED = ("view_submission", "block_suggestion")


class NoConnection(RuntimeError):
    """No Socket Mode connection is open: Slack would have nowhere to send the request."""


@dataclass(slots=True)
class SocketConnection:
    """One WebSocket link, from its upgrade to its close."""

    id: int
    ticket: str
    opened_at: float  # time.time()
    closed_at: float | None = None
    # The WebSocket close code: 1000 when the app closed it (a close handshake), 1006 when
    # the connection dropped (say, its process killed), None while open.
    close_code: int | None = None
    hello: dict[str, Any] = field(default_factory=dict)
    disconnects: list[str] = field(default_factory=list)  # the reasons sent, in order

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(slots=True)
class Envelope:
    """One envelope sent to the app, and its ack as it arrived (or not)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    connection: int
    sent_at: float  # time.time()
    retry_attempt: int | None = None
    retry_reason: str | None = None
    deadline: float = ACK_DEADLINE  # seconds Slack waited for this one's ack
    acked_at: float | None = None
    ack: dict[str, Any] | None = None  # the ack message as the app sent it

    @property
    def ack_seconds(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at

    @property
    def ack_payload(self) -> dict[str, Any] | None:
        """The ack's ``payload`` (the app's answer), None when it sent none."""
        payload = (self.ack or {}).get("payload")
        return payload if isinstance(payload, dict) else None

    @property
    def late(self) -> bool:
        """Acked, but after Slack's deadline (Slack had already shown the user an error)."""
        seconds = self.ack_seconds
        return seconds is not None and seconds > self.deadline

    @property
    def missing(self) -> bool:
        """Not acked, and the deadline has passed."""
        return self.acked_at is None and time.time() - self.sent_at > self.deadline

    def message(self) -> dict[str, Any]:
        """The envelope as it goes over the socket."""
        out: dict[str, Any] = {
            "envelope_id": self.envelope_id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
        }
        if self.type == "events_api":
            out["retry_attempt"] = self.retry_attempt or 0
            out["retry_reason"] = self.retry_reason or ""
        elif self.retry_attempt is not None:
            out["retry_attempt"] = self.retry_attempt
            out["retry_reason"] = self.retry_reason or ""
        return out


def envelope_of(body: str, headers: dict[str, str]) -> tuple[str, dict[str, Any], bool]:
    """(type, payload, accepts_response_payload) of the envelope carrying the request Slack
    would POST as `body` with `headers`: a form with ``command`` → ``slash_commands`` (the
    form's fields); a form whose one field is ``payload`` → ``interactive`` (that JSON);
    a JSON body → ``events_api``."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type.startswith("application/json"):
        return "events_api", json.loads(body), False
    fields = dict(parse_qsl(body, keep_blank_values=True))
    if set(fields) == {"payload"}:
        payload = json.loads(fields["payload"])
        answered = isinstance(payload, dict) and payload.get("type") in _ANSWERED
        return "interactive", payload, answered
    return "slash_commands", fields, True


class SocketModeServer:
    """Socket Mode links on a loopback port, from a thread of their own (see the module)."""

    def __init__(self, *, host: str = "127.0.0.1", app_id: str = APP_ID) -> None:
        self.host = host
        self.app_id = app_id
        self.port = 0
        self.grace = 10.0  # seconds before the server closes a link it asked to refresh
        self.ack_deadline = ACK_DEADLINE
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._connections: list[SocketConnection] = []
        self._sockets: dict[int, web.WebSocketResponse] = {}
        self._envelopes: list[Envelope] = []
        self._stray_acks: list[dict[str, Any]] = []
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._next = 0  # round-robin position
        self._closing: set[asyncio.Task[Any]] = set()  # grace closes scheduled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SocketModeServer:
        if self.started:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/link/", self._link)
            runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"slack-socket:{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("the Socket Mode server did not start")
        return self

    def stop(self) -> None:
        """Close every link (a going-away close) and stop serving."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            for ws in list(self._sockets.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), timeout=2)
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def mint_url(self) -> str:
        """A new link URL (apps.connections.open's ``url``): one-use, on loopback."""
        self.start()
        ticket = secrets.token_hex(16)
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------ inspection

    @property
    def connections(self) -> list[SocketConnection]:
        """Every link ever opened, oldest first (closed ones with `closed_at`)."""
        with self._lock:
            return list(self._connections)

    @property
    def open_connections(self) -> int:
        """How many links are open now."""
        with self._lock:
            return sum(1 for c in self._connections if c.open)

    @property
    def envelopes(self) -> list[Envelope]:
        """Every envelope sent, oldest first, with its ack as it arrived."""
        with self._lock:
            return list(self._envelopes)

    @property
    def late_acks(self) -> list[Envelope]:
        return [e for e in self.envelopes if e.late]

    @property
    def missing_acks(self) -> list[Envelope]:
        return [e for e in self.envelopes if e.missing]

    @property
    def stray_acks(self) -> list[dict[str, Any]]:
        """Messages from the app that ack no envelope sent (unknown id, not JSON, …)."""
        with self._lock:
            return list(self._stray_acks)

    # ------------------------------------------------------------------ Slack's side

    async def deliver(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        wait: float | None = None,
    ) -> Envelope:
        """Send an envelope to the next open link (NoConnection: none is open) and wait up
        to `wait` seconds (default: the ack deadline) for its ack. Returns its record, acked
        or not (an ack arriving later is still recorded). The same `envelope_id` again is a
        redelivery."""
        record = Envelope(
            envelope_id=envelope_id or str(uuid.uuid4()),
            type=type,
            payload=payload,
            accepts_response_payload=accepts_response_payload,
            connection=0,
            sent_at=0.0,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            deadline=self.ack_deadline,
        )
        return await self._call(self._deliver(record, self.ack_deadline if wait is None else wait))

    async def disconnect(self, reason: str = "refresh_requested") -> int:
        """Send ``disconnect`` with `reason` to every open link; see the module for what
        follows. Returns how many links were told."""
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"reason must be one of {DISCONNECT_REASONS}, not {reason!r}")
        return await self._call(self._disconnect(reason))

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise NoConnection("no Socket Mode connection was ever opened")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    # ------------------------------------------------------------------ the server's loop

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._lock:
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        if not known:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            connection = SocketConnection(id=next(self._ids), ticket=ticket, opened_at=time.time())
            self._connections.append(connection)
            self._sockets[connection.id] = ws
            open_now = sum(1 for c in self._connections if c.open)
        connection.hello = {
            "type": "hello",
            "num_connections": open_now,
            "debug_info": {
                "host": f"applink-sim-{connection.id}",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        try:
            await ws.send_json(connection.hello)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._acked(str(message.data))
        finally:
            with self._lock:
                connection.closed_at = time.time()
                connection.close_code = ws.close_code
                self._sockets.pop(connection.id, None)
        return ws

    def _acked(self, text: str) -> None:
        now = time.time()
        try:
            ack = json.loads(text)
        except json.JSONDecodeError:
            ack = {"not_json": text[:200]}
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        with self._lock:
            record = next(
                (
                    e
                    for e in self._envelopes
                    if e.envelope_id == envelope_id and e.acked_at is None and e.sent_at
                ),
                None,
            )
            if record is None:
                self._stray_acks.append(ack if isinstance(ack, dict) else {"ack": ack})
                return
            record.acked_at, record.ack = now, ack
            waiting = self._waiting.pop(f"{record.envelope_id}:{id(record)}", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def _deliver(self, record: Envelope, wait: float) -> Envelope:
        with self._lock:
            links = [c for c in self._connections if c.open and c.id in self._sockets]
            if not links:
                raise NoConnection("no Socket Mode connection is open")
            connection = links[self._next % len(links)]
            self._next += 1
            ws = self._sockets[connection.id]
            record.connection, record.sent_at = connection.id, time.time()
            self._envelopes.append(record)
            done = asyncio.get_running_loop().create_future()
            self._waiting[f"{record.envelope_id}:{id(record)}"] = done
        await ws.send_json(record.message())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout=wait)
        return record

    async def _disconnect(self, reason: str) -> int:
        with self._lock:
            links = [(c, self._sockets[c.id]) for c in self._connections if c.id in self._sockets]
        loop = asyncio.get_running_loop()
        for connection, ws in links:
            connection.disconnects.append(reason)
            await ws.send_json(
                {
                    "type": "disconnect",
                    "reason": reason,
                    "debug_info": {"host": f"applink-sim-{connection.id}"},
                }
            )
            if reason in _CLOSING:
                await ws.close()
            else:
                loop.call_later(self.grace, self._close_later, ws)
        return len(links)

    def _close_later(self, ws: web.WebSocketResponse) -> None:
        task = asyncio.get_running_loop().create_task(ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
