"""A Slack Web API server and a signed-request sender, for the demo and the tests.

`SlackSim` answers the Web API methods rollbot calls, over real HTTP, with Slack's shapes:
HTTP 200 and `{"ok": false, "error": …}` for API errors, HTTP 429 with `Retry-After` for
rate limits. It records every call and keeps the channel history (edits applied, thread
replies linked by `thread_ts`) so tests assert on what reached Slack, not on SDK calls.
A chat.postMessage to a user id lands in the app's DM with that user, answered with its
`D…` conversation id, as Slack does (`direct_messages(user)`).

`SlackSender` plays Slack's side of the Events/Interactivity endpoints: it posts slash
commands and button clicks to the bot exactly as Slack does (form-encoded, signed with the
signing secret, with `X-Slack-Retry-*` on retries), Events API callbacks (JSON, signed the
same way; `app_home_opened`), and can forge or age a request.

Modals: `views.open` validates the view as Slack does (title, submit when there are input
blocks, at most 100 blocks) and opens it for the user the trigger id was minted for
(`mint_trigger_id(user)`; the sender's clicks and commands mint them for the clicking
user). `open_views(user)` lists what is open; the sender's `view_submission` posts a
submission exactly as Slack does and applies the bot's answer (an empty ack closes the
view, `response_action: errors` keeps it open with `view_errors(view_id)`, `update`
replaces it, `clear` closes it); `close_view` is the user pressing Cancel.

The App Home: `views.publish` validates the home view's blocks (at most 100) and keeps
every view published per user (`published_views(user)`); the sender's `app_home_opened`
carries the user's current home view, as Slack does once one was published.

Shapes follow the Slack API docs and the payloads in tests/fixtures/slack/.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import math
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

T = TypeVar("T")

TEAM_ID = "T0PAYMENTS"
TEAM_DOMAIN = "payments"
BOT_USER_ID = "U0ROLLBOT"
BOT_ID = "B0ROLLBOT"
APP_ID = "A0ROLLBOT"

# Web API rate-limit tiers, in calls per minute (https://api.slack.com/apis/rate-limits).
METHOD_TIERS: dict[str, int] = {
    "auth.test": 100 * 60,  # "special": far above anything rollbot does
    "chat.update": 50,  # Tier 3
    "chat.postEphemeral": 100,  # Tier 4
    "views.open": 100,  # Tier 4
    "views.publish": 100,  # Tier 4
    "users.info": 100,  # Tier 4
    "users.lookupByEmail": 50,  # Tier 3
    "usergroups.users.list": 20,  # Tier 2
    "conversations.info": 50,  # Tier 3
}


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One Web API request as the sim received it (also the refused ones)."""

    method: str
    args: dict[str, Any]
    at: float  # time.time()
    headers: dict[str, str]
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """One body the bot POSTed to a `response_url` (Bolt's `respond()`)."""

    id: str
    body: dict[str, Any]
    at: float
    channel: str | None
    message_ts: str | None


@dataclass(slots=True)
class _Bucket:
    """A token bucket: `capacity` calls at once, refilled at `rate` per second."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class SlackSim:
    """A Slack Web API server on a loopback port, in its own thread and event loop.

    Pass `api_url` as `AsyncWebClient(base_url=…)`. Any `xoxb-`/`xoxp-` token is accepted
    unless `token` pins one. `rate_limits=False` turns the 429s off (benchmarks).
    chat.postMessage allows `post_burst` messages at once per channel, then `post_rate`
    per second, like Slack's "1 per second per channel, short bursts allowed".
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: bool = True,
        token: str | None = None,
        post_rate: float = 1.0,
        post_burst: int = 4,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.host, self._port = host, port
        self.rate_limits = rate_limits
        self.token = token
        self.post_rate, self.post_burst = post_rate, post_burst
        self.trigger_ttl = trigger_ttl
        self._lock = threading.RLock()
        self._calls: list[RecordedCall] = []
        self._responses: list[RecordedResponse] = []
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, dict[str, dict[str, Any]]] = {}  # channel -> ts -> message
        self._ephemerals: list[dict[str, Any]] = []
        self._views: list[dict[str, Any]] = []
        self._home: dict[str, list[dict[str, Any]]] = {}  # user -> home views published
        self.home_tab_enabled = True  # False: views.publish answers not_enabled
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._forced: dict[str, list[int]] = {}  # method -> Retry-After of forced 429s
        # method -> (HTTP status, channel or None for any) of forced errors, in order
        self._failing: dict[str, list[tuple[int, str | None]]] = {}
        self._slow: dict[str, list[float]] = {}  # method -> delays before answering
        self._triggers: dict[str, float] = {}
        self._trigger_users: dict[str, str | None] = {}  # trigger id → the user it is for
        self._used_triggers: set[str] = set()
        self._open: dict[str, dict[str, Any]] = {}  # view id → open modal, oldest first
        self._view_users: dict[str, str | None] = {}  # view id → the user it was opened for
        self._view_errors: dict[str, dict[str, str]] = {}  # view id → last errors answered
        self._response_urls: dict[str, tuple[str | None, str | None]] = {}
        self._last_ts = 0
        self._block_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("SlackSim is not started")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def start(self) -> SlackSim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(128)
        self._socket = sock
        config = uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="slack-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("SlackSim did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._socket is not None:
            self._socket.close()
        self._thread = self._server = None

    def __enter__(self) -> SlackSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ seed data

    def add_user(
        self,
        id: str,
        name: str,
        *,
        real_name: str = "",
        email: str = "",
        display_name: str = "",
        is_bot: bool = False,
    ) -> None:
        real_name = real_name or name
        with self._lock:
            self._users[id] = {
                "id": id,
                "team_id": TEAM_ID,
                "name": name,
                "deleted": False,
                "real_name": real_name,
                "tz": "Etc/UTC",
                "is_bot": is_bot,
                "is_admin": False,
                "profile": {
                    "real_name": real_name,
                    "display_name": display_name,
                    "real_name_normalized": real_name,
                    "display_name_normalized": display_name,
                    "email": email,
                    "team": TEAM_ID,
                },
            }

    def add_usergroup(self, id: str, handle: str, members: Iterable[str]) -> None:
        with self._lock:
            self._usergroups[id] = {"id": id, "handle": handle, "users": list(members)}

    def set_usergroup_members(self, id: str, members: Iterable[str]) -> None:
        with self._lock:
            self._usergroups[id]["users"] = list(members)

    def add_channel(self, id: str, name: str) -> None:
        with self._lock:
            self._channels[id] = {"id": id, "name": name.lstrip("#")}
            self._messages.setdefault(id, {})

    def force_ratelimit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 whatever the buckets say."""
        with self._lock:
            self._forced.setdefault(method, []).extend([retry_after] * times)

    def force_status(
        self, method: str, *, status: int = 500, times: int = 1, channel: str | None = None
    ) -> None:
        """Answer the next `times` calls of `method` (to `channel`, an id or a name, when
        given) with HTTP `status` (Slack's own trouble: 500, 502, 503); nothing is done."""
        with self._lock:
            target = self._resolve(channel) if channel is not None else None
            self._failing.setdefault(method, []).extend([(status, target)] * times)

    def slow_down(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a slow Slack)."""
        with self._lock:
            self._slow.setdefault(method, []).extend([seconds] * times)

    def mint_trigger_id(self, user: str | None = None) -> str:
        """A trigger id as a click or command carries it, valid `trigger_ttl` s; a view
        opened with it is open for `user`."""
        trigger = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"
        with self._lock:
            self._triggers[trigger] = time.monotonic()
            self._trigger_users[trigger] = user
        return trigger

    def mint_response_url(
        self, *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        rid = uuid.uuid4().hex
        with self._lock:
            self._response_urls[rid] = (channel, message_ts)
        return f"{self.url}/response_url/{rid}"

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def responses(self) -> list[RecordedResponse]:
        """Bodies POSTed to response_urls, oldest first."""
        with self._lock:
            return list(self._responses)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._ephemerals]

    @property
    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._views]

    def open_views(self, user: str) -> list[dict[str, Any]]:
        """The modals open for `user` now (opened for a trigger minted for them, not yet
        closed), oldest first."""
        with self._lock:
            views: list[dict[str, Any]] = json.loads(
                json.dumps(
                    [v for vid, v in self._open.items() if self._view_users.get(vid) == user]
                )
            )
        return views

    def view_errors(self, view_id: str) -> dict[str, str]:
        """The errors (block id → message) the bot answered to the last submission of the
        view; {} when its last answer had none."""
        with self._lock:
            return dict(self._view_errors.get(view_id, {}))

    def close_view(self, view_id: str) -> None:
        """The view is gone (the user pressed Cancel, or an answer closed it)."""
        with self._lock:
            self._open.pop(view_id, None)

    def _view_answered(self, view_id: str, body: dict[str, Any]) -> None:
        """Apply the bot's answer to a view_submission as Slack does."""
        action = body.get("response_action")
        with self._lock:
            view = self._open.get(view_id)
            if action == "errors":
                errors = body.get("errors")
                self._view_errors[view_id] = (
                    {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
                )
                return
            self._view_errors[view_id] = {}
            if action == "update" and view is not None and isinstance(body.get("view"), dict):
                self._open[view_id] = self._opened_view(
                    body["view"], view_id=view_id, root=view["root_view_id"]
                )
            elif action == "push" and view is not None and isinstance(body.get("view"), dict):
                pushed = self._opened_view(body["view"], root=view["root_view_id"])
                pushed["previous_view_id"] = view_id
                self._open[pushed["id"]] = pushed
                self._view_users[pushed["id"]] = self._view_users.get(view_id)
            elif action == "clear" and view is not None:
                for vid, v in list(self._open.items()):
                    if v.get("root_view_id") == view["root_view_id"]:
                        self._open.pop(vid, None)
            else:  # an empty 200 (or {}, or response_action "clear" of a lone view)
                self._open.pop(view_id, None)

    def _opened_view(
        self, view: dict[str, Any], *, view_id: str | None = None, root: str | None = None
    ) -> dict[str, Any]:
        """A view as Slack keeps and returns it: ids, a fresh hash, empty state."""
        vid = view_id or "V" + secrets.token_hex(5).upper()
        opened = {
            "id": vid,
            "team_id": TEAM_ID,
            "type": view.get("type", "modal"),
            "blocks": [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": root or vid,
            "app_id": APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        opened["blocks"] = self._with_block_ids(view.get("blocks"))
        return opened

    def published_views(self, user: str) -> list[dict[str, Any]]:
        """Every home view published for `user` with views.publish, oldest first."""
        with self._lock:
            views: list[dict[str, Any]] = json.loads(json.dumps(self._home.get(user, [])))
        return views

    def home_view(self, user: str) -> dict[str, Any] | None:
        """The home view `user` sees now (the last one published), or None."""
        views = self.published_views(user)
        return views[-1] if views else None

    def channel_id(self, channel: str) -> str:
        """`#payments-deploys`, `payments-deploys` or `C0…` → the channel id (else KeyError)."""
        with self._lock:
            return self._resolve(channel)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages in ts order, edits applied; thread replies carry `thread_ts`."""
        with self._lock:
            cid = self._resolve(channel)
            return [
                json.loads(json.dumps(m)) for _, m in sorted(self._messages.get(cid, {}).items())
            ]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        for m in self.messages(channel):
            if m["ts"] == ts:
                return m
        return None

    def direct_messages(self, user: str) -> list[dict[str, Any]]:
        """What the app posted in its direct-message conversation with `user` (a
        chat.postMessage to the user id), oldest first; [] when it never wrote."""
        with self._lock:
            cid = _dm_id(user)
            if cid not in self._channels:
                return []
        return self.messages(cid)

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of `ts` (not the parent), oldest first."""
        return [m for m in self.messages(channel) if m.get("thread_ts") == ts and m["ts"] != ts]

    async def wait_for(
        self,
        predicate: Callable[[], T],
        *,
        timeout: float = 5.0,
        interval: float = 0.01,
    ) -> T:
        """Poll `predicate` until it returns something truthy; return it (else TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    def wait_for_sync(
        self, predicate: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01
    ) -> T:
        """`wait_for` for synchronous code (never from a loop the bot runs in)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    # ------------------------------------------------------------------ HTTP

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._handle_api, methods=["GET", "POST"]),
                Route("/response_url/{rid}", self._handle_response_url, methods=["POST"]),
            ]
        )

    async def _handle_api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args = await _read_args(request)
        with self._lock:
            delays = self._slow.get(method)
            delay = delays.pop(0) if delays else 0.0
        if delay:
            await asyncio.sleep(delay)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body, extra_headers = self._dispatch(method, args, headers)
        with self._lock:
            self._calls.append(
                RecordedCall(method, args, time.time(), headers, status=status, response=body)
            )
        return JSONResponse(body, status_code=status, headers=extra_headers)

    def _dispatch(
        self, method: str, args: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = _HANDLERS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else args.pop("token", "")
        args.pop("token", None)
        with self._lock:
            status = self._forced_status(method, args)
        if status is not None:
            return status, {"ok": False, "error": "internal_error"}, {}
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if not self._token_ok(token):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        with self._lock:
            retry_after = self._ratelimit(method, args)
            if retry_after:
                return (
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(retry_after)},
                )
            try:
                return 200, {"ok": True, **handler(self, args)}, {}
            except _ApiError as e:
                return 200, {"ok": False, "error": e.error, **e.extra}, {}

    def _forced_status(self, method: str, args: dict[str, Any]) -> int | None:
        """The first forced error for this call, taken; None when there is none."""
        failing = self._failing.get(method) or []
        for i, (status, channel) in enumerate(failing):
            if channel is None or self._resolve_or_none(args.get("channel")) == channel:
                del failing[i]
                return status
        return None

    def _resolve_or_none(self, channel: Any) -> str | None:
        try:
            return self._resolve(str(channel)) if channel else None
        except KeyError:
            return None

    def _token_ok(self, token: str) -> bool:
        if self.token is not None:
            return hmac.compare_digest(token, self.token)
        return token.startswith(("xoxb-", "xoxp-")) and len(token) > 10

    def _ratelimit(self, method: str, args: dict[str, Any]) -> int:
        """0 when the call may go through, else the Retry-After seconds."""
        forced = self._forced.get(method)
        if forced:
            return forced.pop(0)
        if not self.rate_limits:
            return 0
        now = time.monotonic()
        if method == "chat.postMessage":
            try:
                key = (method, self._resolve(str(args.get("channel", ""))))
            except KeyError:
                return 0  # channel_not_found wins
            capacity, rate = float(self.post_burst), self.post_rate
        elif method in METHOD_TIERS:
            per_minute = METHOD_TIERS[method]
            key, capacity, rate = (method, ""), float(per_minute), per_minute / 60.0
        else:
            return 0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        wait = bucket.take(now)
        return max(1, math.ceil(wait)) if wait else 0

    async def _handle_response_url(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return Response("invalid_payload", status_code=400)
        with self._lock:
            channel, message_ts = self._response_urls.get(rid, (None, None))
            self._responses.append(RecordedResponse(rid, body, time.time(), channel, message_ts))
            self._apply_response(body, channel, message_ts)
        # Slack answers response_url posts with a plain "ok" body.
        return Response("ok", media_type="text/html")

    def _apply_response(
        self, body: dict[str, Any], channel: str | None, message_ts: str | None
    ) -> None:
        """What Slack does with a response_url body: replace/delete the original or post."""
        if channel is None:
            return
        if body.get("delete_original") and message_ts:
            self._messages.get(channel, {}).pop(message_ts, None)
            return
        if _truthy(body.get("replace_original")) and message_ts:
            old = self._messages.get(channel, {}).get(message_ts)
            if old is not None:
                old["text"] = body.get("text", "")
                old["blocks"] = self._with_block_ids(body.get("blocks"))
                old["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
            return
        if body.get("response_type") == "in_channel":
            self._store_message(
                channel, body.get("text", ""), body.get("blocks"), body.get("thread_ts")
            )
        else:
            self._ephemerals.append(
                {
                    "channel": channel,
                    "user": None,
                    "text": body.get("text", ""),
                    "blocks": body.get("blocks") or [],
                    "via": "response_url",
                }
            )

    # ------------------------------------------------------------------ state helpers

    def _resolve(self, channel: str) -> str:
        if channel in self._channels:
            return channel
        name = channel.lstrip("#")
        for cid, c in self._channels.items():
            if c["name"] == name:
                return cid
        raise KeyError(channel)

    def _channel(self, args: dict[str, Any]) -> str:
        try:
            return self._resolve(str(args.get("channel") or ""))
        except KeyError:
            raise _ApiError("channel_not_found") from None

    def _next_ts(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _with_block_ids(self, blocks: Any) -> list[dict[str, Any]]:
        out = []
        for b in blocks or []:
            b = dict(b)
            b.setdefault("block_id", _short_id(next(self._block_ids)))
            out.append(b)
        return out

    def _store_message(
        self, channel: str, text: str, blocks: Any, thread_ts: str | None
    ) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {
            "user": BOT_USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": text,
            "team": TEAM_ID,
            "blocks": self._with_block_ids(blocks),
        }
        history = self._messages.setdefault(channel, {})
        if thread_ts:
            parent = history.get(thread_ts)
            if parent is None:
                raise _ApiError("thread_not_found")
            root = parent.get("thread_ts", thread_ts)
            message["thread_ts"] = root
            parent = history[root]
            parent["thread_ts"] = root
            parent["reply_count"] = parent.get("reply_count", 0) + 1
            parent["latest_reply"] = ts
        history[ts] = message
        return message


# ---------------------------------------------------------------------- methods


def _require_text(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    text = str(args.get("text") or "")
    blocks = _json_arg(args.get("blocks"))
    if not text and not blocks:
        raise _ApiError("no_text")
    if blocks is not None:
        errors = _block_errors(blocks)
        if errors:
            raise _ApiError("invalid_blocks", errors=errors)
    if len(text) > 40_000:
        raise _ApiError("msg_too_long")
    return text, blocks


def _auth_test(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": "Payments",
        "user": "rollbot",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def _dm_id(user: str) -> str:
    """The id of the app's DM conversation with `user` (U0ONCALL → D0ONCALL)."""
    return "D" + user[1:]


def _post_message(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    # A user id as the channel posts in the app's DM with that user, as Slack does: the
    # answer names the DM conversation (D…), which chat.update then takes.
    user = str(args.get("channel") or "")
    if user in sim._users and user not in sim._channels:
        cid = _dm_id(user)
        if cid not in sim._channels:
            sim._channels[cid] = {"id": cid, "name": cid, "is_im": True, "user": user}
            sim._messages.setdefault(cid, {})
        args = {**args, "channel": cid}
    channel = sim._channel(args)
    text, blocks = _require_text(args)
    thread_ts = args.get("thread_ts") or None
    message = sim._store_message(channel, text, blocks, thread_ts)
    return {"channel": channel, "ts": message["ts"], "message": dict(message)}


def _update(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    channel = sim._channel(args)
    ts = str(args.get("ts") or "")
    message = sim._messages.get(channel, {}).get(ts)
    if message is None:
        raise _ApiError("message_not_found")
    text, blocks = _require_text(args)
    message["text"] = text
    if blocks is not None:
        message["blocks"] = sim._with_block_ids(blocks)
    message["edited"] = {"user": BOT_USER_ID, "ts": sim._next_ts()}
    return {"channel": channel, "ts": ts, "text": text, "message": dict(message)}


def _post_ephemeral(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    channel = sim._channel(args)
    user = str(args.get("user") or "")
    if user not in sim._users:
        raise _ApiError("user_not_found")
    text, blocks = _require_text(args)
    ts = sim._next_ts()
    sim._ephemerals.append(
        {
            "channel": channel,
            "user": user,
            "text": text,
            "blocks": blocks or [],
            "ts": ts,
            "thread_ts": args.get("thread_ts"),
            "via": "chat.postEphemeral",
        }
    )
    return {"message_ts": ts}


def _views_open(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    trigger = str(args.get("trigger_id") or "")
    view = _json_arg(args.get("view"))
    if not trigger:
        raise _ApiError("invalid_arguments")
    minted = sim._triggers.get(trigger)
    if minted is not None and time.monotonic() - minted > sim.trigger_ttl:
        raise _ApiError("expired_trigger_id")
    if trigger in sim._used_triggers:
        raise _ApiError("exchanged_trigger_id")
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise _ApiError("invalid_arguments")
    if len(json.dumps(view)) > 250_000:
        raise _ApiError("view_too_large")
    errors = _modal_errors(view)
    if errors:
        raise _ApiError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
        )
    sim._used_triggers.add(trigger)
    opened = sim._opened_view(view)
    sim._views.append(opened)
    sim._open[opened["id"]] = opened
    sim._view_users[opened["id"]] = sim._trigger_users.get(trigger)
    return {"view": json.loads(json.dumps(opened))}


def _modal_errors(view: dict[str, Any]) -> list[str]:
    """What Slack refuses in a modal: a title (plain_text, at most 24 characters), submit
    and close likewise, a submit button when there are input blocks, private_metadata at
    most 3000 characters, callback_id at most 255, and the blocks' limits (100 blocks)."""
    errors: list[str] = []
    for name, required in (("title", True), ("submit", False), ("close", False)):
        obj = view.get(name)
        if obj is None:
            if required:
                errors.append(f"missing required field: {name} [json-pointer:/view/{name}]")
            continue
        if not isinstance(obj, dict) or obj.get("type") != "plain_text":
            errors.append(f"must be a plain_text object [json-pointer:/view/{name}]")
        elif len(str(obj.get("text", ""))) > 24:
            errors.append(f"must be less than 25 characters [json-pointer:/view/{name}/text]")
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_input and view.get("submit") is None:
        errors.append("must provide submit when using input blocks [json-pointer:/view/submit]")
    if len(str(view.get("private_metadata") or "")) > 3000:
        errors.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id") or "")) > 255:
        errors.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    errors.extend(_block_errors(blocks, max_blocks=100, pointer="/view/blocks"))
    return errors


def _views_publish(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    """Publish a user's Home tab: the same view id per user, a new hash each time."""
    user = str(args.get("user_id") or "")
    view = _json_arg(args.get("view"))
    if not user or not isinstance(view, dict) or view.get("type") != "home":
        raise _ApiError("invalid_arguments")
    if not sim.home_tab_enabled:
        raise _ApiError("not_enabled")
    if len(json.dumps(view)) > 250_000:
        raise _ApiError("view_too_large")
    errors = _block_errors(view.get("blocks"), max_blocks=100, pointer="/view/blocks")
    if errors:
        raise _ApiError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
        )
    history = sim._home.setdefault(user, [])
    current = history[-1] if history else None
    wanted_hash = args.get("hash")
    if wanted_hash and current is not None and wanted_hash != current["hash"]:
        raise _ApiError("hash_conflict")
    view_id = current["id"] if current is not None else "V" + secrets.token_hex(5).upper()
    published = {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "home",
        "close": None,
        "submit": None,
        "blocks": sim._with_block_ids(view.get("blocks")),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "clear_on_close": False,
        "notify_on_close": False,
        "root_view_id": view_id,
        "previous_view_id": None,
        "app_id": APP_ID,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }
    history.append(published)
    return {"view": json.loads(json.dumps(published))}


def _users_info(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    user = sim._users.get(str(args.get("user") or ""))
    if user is None:
        raise _ApiError("user_not_found")
    return {"user": json.loads(json.dumps(user))}


def _users_lookup_by_email(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    email = str(args.get("email") or "").strip().lower()
    if not email:
        raise _ApiError("invalid_arguments")
    for user in sim._users.values():
        if str(user["profile"].get("email") or "").lower() == email and not user["deleted"]:
            return {"user": json.loads(json.dumps(user))}
    raise _ApiError("users_not_found")


def _usergroup_users(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    group = sim._usergroups.get(str(args.get("usergroup") or ""))
    if group is None:
        raise _ApiError("no_such_subteam")
    return {"users": list(group["users"])}


def _conversations_info(sim: SlackSim, args: dict[str, Any]) -> dict[str, Any]:
    channel = sim._channels.get(str(args.get("channel") or ""))
    if channel is None:
        raise _ApiError("channel_not_found")
    return {
        "channel": {
            "id": channel["id"],
            "name": channel["name"],
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_private": False,
            "is_archived": False,
            "is_member": True,
            "context_team_id": TEAM_ID,
        }
    }


_HANDLERS: dict[str, Callable[[SlackSim, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "views.open": _views_open,
    "views.publish": _views_publish,
    "users.info": _users_info,
    "users.lookupByEmail": _users_lookup_by_email,
    "usergroups.users.list": _usergroup_users,
    "conversations.info": _conversations_info,
}


# ---------------------------------------------------------------------- parsing


async def _read_args(request: Request) -> dict[str, Any]:
    """Query string, then a form or JSON body, merged (Slack accepts all three)."""
    args: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return args
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        with contextlib.suppress(json.JSONDecodeError):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                args.update(parsed)
    else:
        args.update(parse_qsl(body.decode(), keep_blank_values=True))
    return args


def _json_arg(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _ApiError("invalid_arguments") from None
    return value


def _block_errors(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """The Block Kit limits Slack enforces on a message (a subset; enough to catch bugs).

    A message takes at most 50 blocks, a modal or the Home tab 100 (`max_blocks`).
    """
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"must provide no more than {max_blocks} items [json-pointer:{pointer}]")
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:{pointer}/{i}]"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"missing required field: type {where}")
            continue
        text = block.get("text")
        if block["type"] == "header" and (
            not isinstance(text, dict) or text.get("type") != "plain_text"
        ):
            errors.append(f"must be a plain_text object {where}/text")
        if block["type"] == "context" and len(block.get("elements") or []) > 10:
            errors.append(f"must provide no more than 10 items {where}/elements")
        if isinstance(text, dict):
            limit = 150 if block["type"] == "header" else 3000
            if len(str(text.get("text", ""))) > limit:
                errors.append(f"must be less than {limit + 1} characters {where}/text")
        fields = block.get("fields") or []
        if len(fields) > 10:
            errors.append(f"must provide no more than 10 items {where}/fields")
        for f in fields:
            if len(str(f.get("text", ""))) > 2000:
                errors.append(f"must be less than 2001 characters {where}/fields")
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if not isinstance(el, dict) or el.get("type") != "button":
                continue
            if len(str(el.get("text", {}).get("text", ""))) > 75:
                errors.append(f"must be less than 76 characters {where}/elements/text")
            if len(str(el.get("value", ""))) > 2000:
                errors.append(f"must be less than 2001 characters {where}/elements/value")
            aid = el.get("action_id")
            if aid is not None:
                if aid in action_ids:
                    errors.append(f"action_id already exists {where}/elements")
                action_ids.add(aid)
    return errors


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _short_id(n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    out = ""
    n += 3844  # at least three characters, like Slack's
    while n:
        n, r = divmod(n, len(alphabet))
        out = alphabet[r] + out
    return out


# ---------------------------------------------------------------------- sender


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request body exactly as Slack sends it, with its signed headers."""

    body: str
    headers: dict[str, str]


class SlackSender:
    """Posts slash commands (`command="/release"` for another one), button clicks and Events
    API callbacks (`app_home_opened`) to the bot exactly as Slack does.

    With `sim`, response_urls and trigger_ids are minted by the sim, so what the bot sends
    to `response_url` is recorded there (and replaces/deletes the clicked message as Slack
    would). `last_response_url` / `last_trigger_id` say what the last request carried.
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        team_id: str = TEAM_ID,
        team_domain: str = TEAM_DOMAIN,
        api_app_id: str = APP_ID,
        sim: SlackSim | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.team_id, self.team_domain, self.api_app_id = team_id, team_domain, api_app_id
        self.sim = sim
        self.timeout = timeout
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None

    def sign(self, body: str, timestamp: int) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return f"v0={digest}"

    def _channel_name(self, channel_id: str) -> str:
        if self.sim is not None:
            with self.sim._lock, contextlib.suppress(KeyError):
                return str(self.sim._channels[channel_id]["name"])
        return "payments-deploys"

    def _trigger_id(self, user: str | None = None) -> str:
        if self.sim is not None:
            return self.sim.mint_trigger_id(user)
        return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"

    def _response_url(self, channel: str, message_ts: str | None) -> str:
        if self.sim is not None:
            return self.sim.mint_response_url(channel=channel, message_ts=message_ts)
        return (
            f"https://hooks.slack.com/commands/{self.team_id}/"
            f"{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"
        )

    def slash_command_request(
        self,
        user_id: str,
        user_name: str,
        text: str,
        *,
        command: str = "/rollback",
        channel_id: str = "C0PAYDEPLOY",
        channel_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """The signed form-encoded body and headers of a slash command, as Slack sends them."""
        self.last_trigger_id = self._trigger_id(user_id)
        self.last_response_url = self._response_url(channel_id, None)
        fields = {
            "token": "verification_token_unused",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name or self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "enterprise_id": "",
            "enterprise_name": "",
            "response_url": self.last_response_url,
            "trigger_id": self.last_trigger_id,
        }
        return self.signed(
            urlencode(fields),
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    async def slash_command(
        self,
        user_id: str,
        user_name: str,
        text: str,
        *,
        command: str = "/rollback",
        channel_id: str = "C0PAYDEPLOY",
        channel_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST a slash command to `events_url`, form-encoded and signed."""
        return await self.send(
            self.slash_command_request(
                user_id,
                user_name,
                text,
                command=command,
                channel_id=channel_id,
                channel_name=channel_name,
                retry_num=retry_num,
                retry_reason=retry_reason,
                bad_signature=bad_signature,
                timestamp=timestamp,
            )
        )

    def block_actions_payload(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any],
        channel_id: str,
        block_id: str | None = None,
        user_name: str | None = None,
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends for a button click on `message`.

        On an ephemeral message (a response_url or chat.postEphemeral body: `response_type`
        "ephemeral" or `is_ephemeral`), Slack says `container.is_ephemeral: true` and sends
        no `message` (as in the fixture slack/bolt-python.block_actions.json)."""
        found_block, label = _find_button(message, action_id)
        block_id = block_id or found_block or "actions"
        ephemeral = message.get("response_type") == "ephemeral" or bool(message.get("is_ephemeral"))
        message_ts = message.get("ts") or (f"{time.time():.6f}" if ephemeral else None)
        self.last_trigger_id = self._trigger_id(user_id)
        self.last_response_url = self._response_url(channel_id, message_ts)
        now = time.time()
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user_name or user_id.lower(),
                "name": user_name or user_id.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": "verification_token_unused",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self.last_trigger_id,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(channel_id)},
            "message": message,
            "state": {"values": {}},
            "response_url": self.last_response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": label or action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{now:.6f}",
                }
            ],
        }
        if ephemeral:
            del payload["message"]
        return payload

    def click_request(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any],
        channel_id: str = "C0PAYDEPLOY",
        block_id: str | None = None,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """The signed `payload=<json>` body and headers of a button click."""
        payload = self.block_actions_payload(
            user_id,
            action_id,
            value,
            message=message,
            channel_id=channel_id,
            block_id=block_id,
            user_name=user_name,
        )
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
        return self.signed(
            body,
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    async def click(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        message: dict[str, Any],
        channel_id: str = "C0PAYDEPLOY",
        block_id: str | None = None,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST a button click to `events_url` (`payload=<json>`, form-encoded), signed."""
        return await self.send(
            self.click_request(
                user_id,
                action_id,
                value,
                message=message,
                channel_id=channel_id,
                block_id=block_id,
                user_name=user_name,
                retry_num=retry_num,
                retry_reason=retry_reason,
                bad_signature=bad_signature,
                timestamp=timestamp,
            )
        )

    def view_submission_payload(
        self,
        user_id: str,
        view: dict[str, Any],
        values: dict[str, dict[str, str]],
        *,
        user_name: str | None = None,
    ) -> dict[str, Any]:
        """The `view_submission` payload Slack sends when `user_id` presses the submit button
        of `view` (as views.open answered it) with `values` ({block_id: {action_id: text}})
        typed into its plain_text_input elements."""
        state = {
            block_id: {
                action_id: {"type": "plain_text_input", "value": text}
                for action_id, text in by_action.items()
            }
            for block_id, by_action in values.items()
        }
        self.last_trigger_id = self._trigger_id(user_id)
        submitted = {
            "id": view.get("id"),
            "team_id": view.get("team_id", self.team_id),
            "type": view.get("type", "modal"),
            "blocks": view.get("blocks") or [],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": state},
            "hash": view.get("hash", ""),
            "title": view.get("title"),
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": view.get("previous_view_id"),
            "root_view_id": view.get("root_view_id", view.get("id")),
            "app_id": view.get("app_id", APP_ID),
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": view.get("app_installed_team_id", self.team_id),
            "bot_id": view.get("bot_id", BOT_ID),
        }
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {
                "id": user_id,
                "username": user_name or user_id.lower(),
                "name": user_name or user_id.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": "verification_token_unused",
            "trigger_id": self.last_trigger_id,
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def view_submission_request(
        self,
        user_id: str,
        view: dict[str, Any],
        values: dict[str, dict[str, str]],
        *,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """The signed `payload=<json>` body and headers of a view submission."""
        payload = self.view_submission_payload(user_id, view, values, user_name=user_name)
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
        return self.signed(
            body,
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    async def view_submission(
        self,
        user_id: str,
        view: dict[str, Any],
        values: dict[str, dict[str, str]],
        *,
        user_name: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST a view submission to `events_url`, signed; then, with a sim, apply the
        answer as Slack does: a 200 with an empty body or `{}` closes the view,
        `response_action` `errors` keeps it open (`sim.view_errors`), `update` replaces it,
        `push` stacks a new one, `clear` closes them all. Other statuses change nothing."""
        response = await self.send(
            self.view_submission_request(
                user_id,
                view,
                values,
                user_name=user_name,
                retry_num=retry_num,
                retry_reason=retry_reason,
                bad_signature=bad_signature,
                timestamp=timestamp,
            )
        )
        if self.sim is not None and response.status_code == 200 and view.get("id"):
            try:
                answer = json.loads(response.content) if response.content.strip() else {}
            except json.JSONDecodeError:
                answer = {}
            self.sim._view_answered(str(view["id"]), answer if isinstance(answer, dict) else {})
        return response

    def event_callback_request(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """The signed JSON body of an Events API `event_callback` wrapping `event`."""
        now = int(time.time())
        body = {
            "token": "verification_token_unused",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + secrets.token_hex(5).upper(),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_hex(16),
        }
        return self.signed(
            json.dumps(body, separators=(",", ":")),
            content_type="application/json",
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    def app_home_opened_event(
        self, user_id: str, *, tab: str = "home", channel: str | None = None
    ) -> dict[str, Any]:
        """The `app_home_opened` event: with the user's current home view once one was
        published (when the sim knows it), as Slack sends it."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": channel or "D" + user_id[1:],
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if tab == "home" and self.sim is not None:
            current = self.sim.home_view(user_id)
            if current is not None:
                event["view"] = current
        return event

    def app_home_opened_request(
        self,
        user_id: str,
        *,
        tab: str = "home",
        channel: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """The signed `event_callback` of a user opening the app's Home (or Messages) tab."""
        return self.event_callback_request(
            self.app_home_opened_event(user_id, tab=tab, channel=channel),
            retry_num=retry_num,
            retry_reason=retry_reason,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    async def app_home_opened(
        self,
        user_id: str,
        *,
        tab: str = "home",
        channel: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST `app_home_opened` to `events_url` as Slack's Events API does, signed."""
        return await self.send(
            self.app_home_opened_request(
                user_id,
                tab=tab,
                channel=channel,
                retry_num=retry_num,
                retry_reason=retry_reason,
                bad_signature=bad_signature,
                timestamp=timestamp,
            )
        )

    def signed(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        retry_num: int | None = None,
        retry_reason: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """Headers Slack adds: timestamp, `v0=` HMAC-SHA256 of `v0:{ts}:{body}`, retries."""
        ts = int(time.time()) if timestamp is None else int(timestamp)
        signature = self.sign(body, ts)
        if bad_signature:
            signature = "v0=" + hashlib.sha256(b"forged" + body.encode()).hexdigest()
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature,
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return SignedRequest(body, headers)

    async def send(self, request: SignedRequest) -> httpx.Response:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            return await client.post(
                self.events_url, content=request.body.encode(), headers=request.headers
            )


def _find_button(message: dict[str, Any], action_id: str) -> tuple[str | None, str | None]:
    for block in message.get("blocks") or []:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                text = el.get("text") or {}
                return block.get("block_id"), text.get("text")
    return None, None
