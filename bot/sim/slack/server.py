"""The Slack sim's HTTP side: `SlackSim`, a Web API server on a loopback port.

It serves `/api/{method}` (the methods in `bot.sim.slack.methods`) and the `response_url`s it
mints, from a `ThreadedServer`. Around each method it does what Slack does before a method
runs: the token (`not_authed`, `invalid_auth`, also for a token `set_token_valid` turned
off), rate limits by tier (HTTP 429 with
`Retry-After`; chat.postMessage per channel), and the failures a test forces (`force_status`,
`force_ratelimit`, `slow_down`). Every call is recorded as a `RecordedRequest` (`calls`,
`calls_to`), every body posted to a response_url as a `RecordedResponse` (`responses`).

Two fault switches model a bad minute of Slack (issue 15's fault suite):

- `ratelimit_window(seconds=…, fraction=…)`: for a while, Slack answers 429 with
  `Retry-After` to that fraction of the calls, spread evenly per method (0.5: every second
  call), deterministically. As Slack documents for 429, the refused call is not processed.
  This is what an app over its workspace's limits sees while its burst lasts
  (https://api.slack.com/apis/rate-limits).
- `lose_answers(method, how=…)`: the next calls are processed (the message is stored) but
  the client is not told so: "maybe delivered". `how="cut"` sends the status line and
  headers, then closes the connection before the body (a connection reset, a proxy or load
  balancer timing out after Slack did the work); `how="500"` answers HTTP 500, which
  promises nothing about whether the call took effect; `how="429"` answers 429 with
  `Retry-After`. Slack documents that a 429'd call was not processed, so that last one is
  not what Slack itself does to one request: it is what a client sees when a call was
  delivered, its answer was lost, and the client's own retry of it was rate-limited (or a
  proxy in between answered 429), the case issue 15 names. `lost_answers` lists them.

Socket Mode: `apps.connections.open`, called with the app-level token (``xapp-…``; `app_token`
pins one, else any well-formed one is taken; a bot or user token is
``not_allowed_token_type``, a refused one ``invalid_auth``), answers a ``ws://`` URL of the
sim's Socket Mode server, `socket` (`bot.sim.slack.socket_mode`), started by that first call.

Incoming webhooks (`bot.sim.slack.webhooks`): `incoming_webhook(channel)` mints a webhook
URL bound to a channel, served at `/services/{team}/{hook}/{secret}`; its posts land in that
channel, take from the channel's chat.postMessage bucket, and are recorded among `calls`
with the path `/services/{team}/{hook}` (the secret left out; `webhook_calls`).

The workspace's state lives in a `Workspace` (`bot.sim.slack.workspace`); `SlackSim` seeds
it (`add_user`, `add_channel`, …) and shows it to tests (`messages`, `open_views`, …),
holding one lock around every use, since the server thread and the test both reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot.sim._server import RecordedRequest, ThreadedServer
from bot.sim.slack import webhooks
from bot.sim.slack.methods import HANDLERS
from bot.sim.slack.socket_mode import SocketModeServer
from bot.sim.slack.workspace import TEAM_ID, ApiError, Workspace, dm_id

__all__ = ["METHOD_TIERS", "RecordedResponse", "SlackSim"]

T = TypeVar("T")

# Web API rate-limit tiers, in calls per minute (https://api.slack.com/apis/rate-limits).
METHOD_TIERS: dict[str, int] = {
    "auth.test": 100 * 60,  # "special": far above anything rollbot does
    "chat.update": 50,  # Tier 3
    "chat.postEphemeral": 100,  # Tier 4
    "views.open": 100,  # Tier 4
    "views.update": 100,  # Tier 4
    "views.publish": 100,  # Tier 4
    "users.info": 100,  # Tier 4
    "users.lookupByEmail": 50,  # Tier 3
    "usergroups.users.list": 20,  # Tier 2
    "conversations.info": 50,  # Tier 3
    "conversations.history": 50,  # Tier 3
    "conversations.replies": 50,  # Tier 3
    "conversations.list": 20,  # Tier 2
}

LOST_ANSWERS = ("cut", "500", "429")

API_PREFIX = "/api/"
CONNECTIONS_OPEN = "apps.connections.open"


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """One body the bot POSTed to a `response_url` (Bolt's `respond()`)."""

    id: str
    body: dict[str, Any]
    at: float
    channel: str | None
    message_ts: str | None


@dataclass(slots=True)
class _Window:
    """`ratelimit_window`: until `until` (monotonic), 429 to `fraction` of each method's
    calls (of `methods`; every method when empty), counted per method from the start."""

    until: float
    fraction: Fraction
    retry_after: int
    methods: frozenset[str]
    counts: dict[str, int]

    def refuses(self, method: str, now: float) -> bool:
        if now >= self.until or (self.methods and method not in self.methods):
            return False
        n = self.counts[method] = self.counts.get(method, 0) + 1
        return math.floor(n * self.fraction) > math.floor((n - 1) * self.fraction)


class _CutAnswer(Response):
    """An answer cut off: the status line and headers (with the body's length) go out, then
    the connection is closed before the body (uvicorn logs "returned without completing
    response" and closes it). The client sees the connection drop mid-answer."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body), media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})


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


class SlackSim:
    """A Slack Web API server on a loopback port, in its own thread and event loop.

    Pass `api_url` as `AsyncWebClient(base_url=…)`. Any `xoxb-`/`xoxp-` token is accepted
    unless `token` pins one; apps.connections.open takes any `xapp-` token unless
    `app_token` pins one. `rate_limits=False` turns the 429s off (benchmarks).
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
        app_token: str | None = None,
        post_rate: float = 1.0,
        post_burst: int = 4,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.host, self._port = host, port
        self.rate_limits = rate_limits
        self.token = token
        self.app_token = app_token
        self.post_rate, self.post_burst = post_rate, post_burst
        self._lock = threading.RLock()
        self._ws = Workspace(trigger_ttl=trigger_ttl)
        self._calls: list[RecordedRequest] = []
        self._responses: list[RecordedResponse] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._forced: dict[str, list[int]] = {}  # method -> Retry-After of forced 429s
        # method -> (HTTP status, channel or None for any) of forced errors, in order
        self._failing: dict[str, list[tuple[int, str | None]]] = {}
        self._slow: dict[str, list[float]] = {}  # method -> delays before answering
        self._window: _Window | None = None  # ratelimit_window
        # method -> (how, channel id or None for any, Retry-After) of answers to lose, in order
        self._losing: dict[str, list[tuple[str, str | None, int]]] = {}
        self._lost: list[tuple[RecordedRequest, str]] = []
        self._refused_tokens: set[str] = set()  # set_token_valid(token, False)
        self._response_urls: dict[str, tuple[str | None, str | None]] = {}
        self._hooks: dict[str, webhooks.Hook] = {}  # webhook id (B…) → its secret, channel
        self._server: ThreadedServer | None = None
        # Socket Mode's links: started by the first apps.connections.open.
        self.socket = SocketModeServer(host=host)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackSim is not started")
        return self._server.url

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    def start(self) -> SlackSim:
        server = ThreadedServer(self._app(), host=self.host, port=self._port, name="slack-sim")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        self.socket.stop()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> SlackSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ settings

    @property
    def trigger_ttl(self) -> float:
        """How long a minted trigger id opens a view, in seconds."""
        return self._ws.trigger_ttl

    @trigger_ttl.setter
    def trigger_ttl(self, seconds: float) -> None:
        with self._lock:
            self._ws.trigger_ttl = seconds

    @property
    def home_tab_enabled(self) -> bool:
        """False: views.publish answers `not_enabled` (the app has no Home tab)."""
        return self._ws.home_tab_enabled

    @home_tab_enabled.setter
    def home_tab_enabled(self, enabled: bool) -> None:
        with self._lock:
            self._ws.home_tab_enabled = enabled

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
            self._ws.users[id] = {
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
            self._ws.usergroups[id] = {"id": id, "handle": handle, "users": list(members)}

    def set_usergroup_members(self, id: str, members: Iterable[str]) -> None:
        with self._lock:
            self._ws.usergroups[id]["users"] = list(members)

    def add_channel(self, id: str, name: str) -> None:
        with self._lock:
            self._ws.channels[id] = {"id": id, "name": name.lstrip("#")}
            self._ws.history.setdefault(id, {})

    def archive_channel(self, channel: str, archived: bool = True) -> None:
        """Archive `channel` (a name or an id), as a person would in Slack: chat.postMessage
        to it answers ``{"ok": false, "error": "is_archived"}``, and conversations.list says
        so; `archived=False` brings it back."""
        with self._lock:
            self._ws.channels[self._ws.resolve(channel)]["is_archived"] = archived

    def incoming_webhook(self, channel: str) -> str:
        """A new incoming webhook's URL, bound to `channel` (a name or an id; KeyError when
        there is none), as Slack gives an app when it is installed to a channel."""
        with self._lock:
            cid = self._ws.resolve(channel)
            hook_id = "B" + secrets.token_hex(5).upper()
            secret = secrets.token_urlsafe(18)
            self._hooks[hook_id] = webhooks.Hook(secret=secret, channel=cid)
        return f"{self.url}{webhooks.WEBHOOK_PREFIX}{TEAM_ID}/{hook_id}/{secret}"

    # ------------------------------------------------------------------ test controls

    def force_ratelimit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 whatever the buckets say."""
        with self._lock:
            self._forced.setdefault(method, []).extend([retry_after] * times)

    def clear_faults(self) -> None:
        """Slack is well again: the forced 429s and errors, the slow answers, the window
        of 429s and the answers to lose still pending are all dropped."""
        with self._lock:
            self._forced.clear()
            self._failing.clear()
            self._slow.clear()
            self._window = None
            self._losing.clear()

    def force_status(
        self, method: str, *, status: int = 500, times: int = 1, channel: str | None = None
    ) -> None:
        """Answer the next `times` calls of `method` (to `channel`, an id or a name, when
        given) with HTTP `status` (Slack's own trouble: 500, 502, 503); nothing is done."""
        with self._lock:
            target = self._ws.resolve(channel) if channel is not None else None
            self._failing.setdefault(method, []).extend([(status, target)] * times)

    def ratelimit_window(
        self,
        *,
        seconds: float,
        fraction: float = 0.5,
        retry_after: int = 1,
        methods: Iterable[str] = (),
    ) -> None:
        """For the next `seconds` (wall clock), answer HTTP 429 with `Retry-After:
        retry_after` to `fraction` of the calls of `methods` (every method when none are
        named), whatever the buckets say: per method, the n-th call since now is refused
        when n × fraction passes a whole number (0.5: the 2nd, 4th, 6th …; 1/3: the 3rd,
        6th …). Deterministic and per method: a client that retries a refused call, with no
        other call to that method meanwhile, gets through. A refused call is not
        processed. A window replaces the one before (`seconds=0` ends it)."""
        with self._lock:
            self._window = _Window(
                until=time.monotonic() + seconds,
                fraction=Fraction(fraction).limit_denominator(1000),
                retry_after=retry_after,
                methods=frozenset(methods),
                counts={},
            )

    def lose_answers(
        self,
        method: str,
        *,
        how: str = "cut",
        times: int = 1,
        retry_after: int = 1,
        channel: str | None = None,
    ) -> None:
        """The next `times` calls of `method` (to `channel`, an id or a name, when given)
        that Slack processes are processed (a message is stored), then their answer is lost
        (`how`): "cut" (the connection closes after the headers), "500" (HTTP 500
        internal_error) or "429" (HTTP 429 ratelimited with `Retry-After: retry_after`).
        Calls refused before they run (a 429, a forced status) do not count."""
        if how not in LOST_ANSWERS:
            raise ValueError(f"how must be one of {LOST_ANSWERS}, not {how!r}")
        with self._lock:
            target = self._ws.resolve(channel) if channel is not None else None
            self._losing.setdefault(method, []).extend([(how, target, retry_after)] * times)

    @property
    def lost_answers(self) -> list[tuple[RecordedRequest, str]]:
        """The calls processed whose answer `lose_answers` lost, with how, oldest first."""
        with self._lock:
            return list(self._lost)

    def set_token_valid(self, token: str, valid: bool) -> None:
        """`valid=False`: Slack no longer knows `token` (mistyped, rotated away, its app
        uninstalled): every method, auth.test first, answers ``{"ok": false, "error":
        "invalid_auth"}`` (HTTP 200), as Slack documents. `valid=True` undoes it."""
        with self._lock:
            if valid:
                self._refused_tokens.discard(token)
            else:
                self._refused_tokens.add(token)

    def slow_down(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a slow Slack)."""
        with self._lock:
            self._slow.setdefault(method, []).extend([seconds] * times)

    def mint_trigger_id(self, user: str | None = None) -> str:
        """A trigger id as a click or command carries it, valid `trigger_ttl` s; a view
        opened with it is open for `user`."""
        trigger = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(8)}"
        with self._lock:
            self._ws.triggers[trigger] = time.monotonic()
            self._ws.trigger_users[trigger] = user
        return trigger

    def mint_response_url(
        self, *, channel: str | None = None, message_ts: str | None = None
    ) -> str:
        rid = uuid.uuid4().hex
        with self._lock:
            self._response_urls[rid] = (channel, message_ts)
        return f"{self.url}/response_url/{rid}"

    def view_answered(self, view_id: str, body: dict[str, Any]) -> None:
        """Apply the bot's answer to a view_submission as Slack does (`SlackSender` calls
        this with the answer's body): see `SignedRequest.send`."""
        with self._lock:
            self._ws.view_answered(view_id, body)

    def close_view(self, view_id: str) -> None:
        """The view is gone (the user pressed Cancel, or an answer closed it)."""
        with self._lock:
            self._ws.open.pop(view_id, None)

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[RecordedRequest]:
        """Every Web API request, refused ones too, in the order they were answered. `path`
        is `/api/{method}`; `body` holds the call's arguments (query, form or JSON body
        merged, as Slack reads them) without the token."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[RecordedRequest]:
        path = API_PREFIX + method
        return [c for c in self.calls if c.path == path]

    @property
    def webhook_calls(self) -> list[RecordedRequest]:
        """Every post to an incoming webhook, refused ones too, oldest first; `body` is the
        payload as parsed (None when it was not JSON), `response` the plain-text answer."""
        return [c for c in self.calls if c.path.startswith(webhooks.WEBHOOK_PREFIX)]

    @property
    def responses(self) -> list[RecordedResponse]:
        """Bodies POSTed to response_urls, oldest first."""
        with self._lock:
            return list(self._responses)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._ws.ephemerals]

    @property
    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(v) for v in self._ws.views]

    def open_views(self, user: str) -> list[dict[str, Any]]:
        """The modals open for `user` now (opened for a trigger minted for them, not yet
        closed), oldest first."""
        with self._lock:
            ws = self._ws
            views: list[dict[str, Any]] = json.loads(
                json.dumps([v for vid, v in ws.open.items() if ws.view_users.get(vid) == user])
            )
        return views

    def view_errors(self, view_id: str) -> dict[str, str]:
        """The errors (block id → message) the bot answered to the last submission of the
        view; {} when its last answer had none."""
        with self._lock:
            return dict(self._ws.view_errors.get(view_id, {}))

    def published_views(self, user: str) -> list[dict[str, Any]]:
        """Every home view published for `user` with views.publish, oldest first."""
        with self._lock:
            views: list[dict[str, Any]] = json.loads(json.dumps(self._ws.home.get(user, [])))
        return views

    def home_view(self, user: str) -> dict[str, Any] | None:
        """The home view `user` sees now (the last one published), or None."""
        views = self.published_views(user)
        return views[-1] if views else None

    def channel_id(self, channel: str) -> str:
        """`#payments-deploys`, `payments-deploys` or `C0…` → the channel id (else KeyError)."""
        with self._lock:
            return self._ws.resolve(channel)

    def channel_name(self, channel_id: str) -> str:
        """The name of the channel with id `channel_id` (else KeyError)."""
        with self._lock:
            return str(self._ws.channels[channel_id]["name"])

    def user_names(self) -> dict[str, str]:
        """Every user's id → name."""
        with self._lock:
            return {uid: str(u["name"]) for uid, u in self._ws.users.items()}

    def channel_names(self) -> dict[str, str]:
        """Every conversation's id → name (the app's DMs too: named by their id)."""
        with self._lock:
            return {cid: str(c["name"]) for cid, c in self._ws.channels.items()}

    def usergroup_handles(self) -> dict[str, str]:
        """Every usergroup's id → handle."""
        with self._lock:
            return {gid: str(g["handle"]) for gid, g in self._ws.usergroups.items()}

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages in ts order, edits applied; thread replies carry `thread_ts`."""
        with self._lock:
            cid = self._ws.resolve(channel)
            return [
                json.loads(json.dumps(m)) for _, m in sorted(self._ws.history.get(cid, {}).items())
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
            cid = dm_id(user)
            if cid not in self._ws.channels:
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
                Route(API_PREFIX + "{method}", self._handle_api, methods=["GET", "POST"]),
                Route("/response_url/{rid}", self._handle_response_url, methods=["POST"]),
                Route(
                    webhooks.WEBHOOK_PREFIX + "{team}/{hook}/{secret}",
                    self._handle_webhook,
                    methods=["POST"],
                ),
            ]
        )

    async def _handle_api(self, request: Request) -> Response:
        arrived = time.time()
        method = request.path_params["method"]
        raw = await request.body()
        query_args: dict[str, Any] = dict(request.query_params)
        body_args = _body_args(raw, request.headers.get("content-type", ""))
        args = {**query_args, **body_args}
        with self._lock:
            delays = self._slow.get(method)
            delay = delays.pop(0) if delays else 0.0
        if delay:
            await asyncio.sleep(delay)
        headers = {k.lower(): v for k, v in request.headers.items()}
        # The call's effect and its record are one step under the lock: whoever sees the
        # workspace changed (a view published, a message posted) also sees the call.
        with self._lock:
            return self._answer(request, method, args, body_args, raw, headers, arrived)

    def _answer(
        self,
        request: Request,
        method: str,
        args: dict[str, Any],
        body_args: dict[str, Any],
        raw: bytes,
        headers: dict[str, str],
        arrived: float,
    ) -> Response:
        status, body, extra_headers = self._dispatch(method, args, headers)
        lost = None
        if status == 200 and body.get("ok"):
            lost = self._take_loss(method, args)
        if lost is not None and lost[0] != "cut":
            how, retry_after = lost
            status = int(how)
            body = {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}
            extra_headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        # The token stays out of the record: not in the arguments (_dispatch took it), the
        # query, or the raw body (dropped when the body carried it).
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=[(k, v) for k, v in request.query_params.multi_items() if k != "token"],
            headers=headers,
            body=args,
            raw=b"" if "token" in body_args else raw,
            at=arrived,
            status=status,
            response_headers=extra_headers,
            response=body,
        )
        self._calls.append(record)
        if lost is not None:
            self._lost.append((record, lost[0]))
        if lost is not None and lost[0] == "cut":
            return _CutAnswer(body)
        return JSONResponse(body, status_code=status, headers=extra_headers)

    def _take_loss(self, method: str, args: dict[str, Any]) -> tuple[str, int] | None:
        """The first answer to lose for this processed call (how, Retry-After), taken."""
        losing = self._losing.get(method) or []
        for i, (how, channel, retry_after) in enumerate(losing):
            if channel is None or self._ws.resolve_or_none(args.get("channel")) == channel:
                del losing[i]
                return how, retry_after
        return None

    def _dispatch(
        self, method: str, args: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = HANDLERS.get(method)
        if handler is None and method != CONNECTIONS_OPEN:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else args.pop("token", "")
        args.pop("token", None)
        with self._lock:
            status = self._forced_status(method, args)
        if status is not None:
            return status, {"ok": False, "error": "internal_error"}, {}
        if method == CONNECTIONS_OPEN:
            return self._connections_open(token)
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
            assert handler is not None
            try:
                return 200, {"ok": True, **handler(self._ws, args)}, {}
            except ApiError as e:
                return 200, {"ok": False, "error": e.error, **e.extra}, {}

    def _connections_open(self, token: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """apps.connections.open: an app-level token gets a new link's URL."""
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if not token.startswith("xapp-"):
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        with self._lock:
            refused = token in self._refused_tokens
        if self.app_token is not None:
            known = hmac.compare_digest(token, self.app_token)
        else:
            known = len(token) > 10
        if refused or not known:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        return 200, {"ok": True, "url": self.socket.mint_url()}, {}

    def _forced_status(self, method: str, args: dict[str, Any]) -> int | None:
        """The first forced error for this call, taken; None when there is none."""
        failing = self._failing.get(method) or []
        for i, (status, channel) in enumerate(failing):
            if channel is None or self._ws.resolve_or_none(args.get("channel")) == channel:
                del failing[i]
                return status
        return None

    def _token_ok(self, token: str) -> bool:
        with self._lock:
            if token in self._refused_tokens:
                return False
        if self.token is not None:
            return hmac.compare_digest(token, self.token)
        return token.startswith(("xoxb-", "xoxp-")) and len(token) > 10

    def _ratelimit(self, method: str, args: dict[str, Any]) -> int:
        """0 when the call may go through, else the Retry-After seconds."""
        forced = self._forced.get(method)
        if forced:
            return forced.pop(0)
        now = time.monotonic()
        if self._window is not None and self._window.refuses(method, now):
            return self._window.retry_after
        if not self.rate_limits:
            return 0
        if method == "chat.postMessage":
            try:
                return self._post_ratelimit(self._ws.resolve(str(args.get("channel", ""))))
            except KeyError:
                return 0  # channel_not_found wins
        if method in METHOD_TIERS:
            per_minute = METHOD_TIERS[method]
            key, capacity, rate = (method, ""), float(per_minute), per_minute / 60.0
        else:
            return 0
        return self._take(key, capacity, rate, now)

    def _post_ratelimit(self, channel: str) -> int:
        """A message posted in `channel` (chat.postMessage or an incoming webhook): 0 when
        it may go through, else the Retry-After seconds."""
        if not self.rate_limits:
            return 0
        key = ("chat.postMessage", channel)
        return self._take(key, float(self.post_burst), self.post_rate, time.monotonic())

    def _take(self, key: tuple[str, str], capacity: float, rate: float, now: float) -> int:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, rate, capacity, now)
        wait = bucket.take(now)
        return max(1, math.ceil(wait)) if wait else 0

    async def _handle_webhook(self, request: Request) -> Response:
        """A post to an incoming webhook: `ok`, or Slack's status and error string."""
        arrived = time.time()
        team, hook_id = request.path_params["team"], request.path_params["hook"]
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        payload: dict[str, Any] | None = None
        retry_after = 0
        with self._lock:
            hook = self._hooks.get(hook_id)
            try:
                if team != TEAM_ID:
                    raise webhooks.WebhookError(404, "no_team")
                if hook is None:
                    raise webhooks.WebhookError(404, "no_service")
                if not hmac.compare_digest(request.path_params["secret"], hook.secret):
                    raise webhooks.WebhookError(403, "invalid_token")
                payload = webhooks.parse_payload(raw, content_type)
                retry_after = self._post_ratelimit(hook.channel)
                if retry_after:
                    raise webhooks.WebhookError(429, "rate_limited")
                webhooks.post(self._ws, hook, payload)
                status, answer = 200, "ok"
            except webhooks.WebhookError as e:
                status, answer = e.status, e.error
            extra_headers = {"Retry-After": str(retry_after)} if retry_after else {}
            headers = {k.lower(): v for k, v in request.headers.items()}
            if "authorization" in headers:  # a webhook needs none; keep only the scheme
                headers["authorization"] = headers["authorization"].split(" ", 1)[0]
            self._calls.append(
                RecordedRequest(
                    method=request.method,
                    path=f"{webhooks.WEBHOOK_PREFIX}{team}/{hook_id}",
                    headers=headers,
                    body=payload,
                    raw=raw,
                    at=arrived,
                    status=status,
                    response_headers=extra_headers,
                    response=answer,
                )
            )
        # Slack answers webhooks in plain text (`ok` or the error), not JSON.
        return Response(answer, status_code=status, media_type="text/html", headers=extra_headers)

    async def _handle_response_url(self, request: Request) -> Response:
        rid = request.path_params["rid"]
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return Response("invalid_payload", status_code=400)
        with self._lock:
            channel, message_ts = self._response_urls.get(rid, (None, None))
            self._responses.append(RecordedResponse(rid, body, time.time(), channel, message_ts))
            self._ws.apply_response(body, channel, message_ts)
        # Slack answers response_url posts with a plain "ok" body.
        return Response("ok", media_type="text/html")


def _body_args(body: bytes, content_type: str) -> dict[str, Any]:
    """A method's arguments in a form or JSON body (Slack accepts both, and the query)."""
    if not body:
        return {}
    if content_type.startswith("application/json"):
        with contextlib.suppress(json.JSONDecodeError):
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                return parsed
        return {}
    return dict(parse_qsl(body.decode(), keep_blank_values=True))
