"""Slack, over slack_sdk's AsyncWebClient: the `Chat` port of bot.core.ports.

Errors are translated at this border:

    HTTP 429 (after the client's own retries)   → TemporaryError(delay=Retry-After)
    HTTP 5xx, connection errors, timeouts       → Unreachable("Slack", …)
    invalid_auth, not_authed, token_revoked, …  → Forbidden("Slack", code)
    any other `{"ok": false, "error": code}`    → SlackRefused (a PermanentError with `.code`)

Rate limits. Slack limits each method per workspace and says, with a 429's `Retry-After`,
how long to wait. Every 429 holds its method at a `RetryAfterGate` shared by the client
`make_web_client` makes and the `SlackChat` over it: no call to that method leaves through
`SlackChat` before the time has passed, whichever task makes it, and the client's own retry
of the refused call (slack_sdk's `AsyncRateLimitErrorRetryHandler`, at most
`max_rate_limit_retries` times) waits at the same gate. chat.postMessage, limited by Slack
per channel, is held per method here: stricter, never wrong.

Maybe delivered. A post whose answer never came back (a connection cut, a timeout, a 5xx,
or a 429 answered to a retry of a post that had in fact gone through) may be in the channel.
`post(key=…)` marks its message with Slack message metadata (event type `rollbot_post`,
payload `{"key": …}`) and is never retried by the client itself, not even for a 429 or a
dropped connection; `find_post` reads the channel's (or the thread's) recent history with
`include_all_metadata` for that key, so the caller (bot.cards.posting) can tell whether it
was delivered before posting it again. Posts without a key keep the client's retries.
Reading history needs the `channels:history` scope (`groups:history` for private channels)
and, for a channel known by its name only, `channels:read`/`groups:read` to find its id.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.adapters._http import header, parse_retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import Forbidden, PermanentError, TemporaryError, Unreachable
from bot.core.model import MessageRef

# The metadata event type of a post made with a key (`SlackChat.post(key=…)`).
POST_EVENT = "rollbot_post"
# How long before the first attempt `find_post` looks (this host's clock and Slack's differ).
LOOKBACK_SECONDS = 120.0
# At most this many pages of 200 messages are read looking for one post.
MAX_HISTORY_PAGES = 5

_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")

# Set while a post whose caller reconciles is in flight: the client must not repeat it.
_CALLER_RECONCILES: ContextVar[bool] = ContextVar("slack_caller_reconciles", default=False)

AUTH_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)


class SlackRefused(PermanentError):
    """Slack answered `{"ok": false, "error": code}`; retrying the same call will not help."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"Slack refused {method}: {code}")
        self.method, self.code = method, code


def _method_of(url: str) -> str:
    """The Web API method an API URL calls (``…/api/chat.postMessage`` → chat.postMessage)."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class RetryAfterGate:
    """When each Web API method may be called again after a 429: `hold(method, seconds)`
    closes it that long (the later deadline wins), `wait(method)` returns once it is open."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open_at: dict[str, float] = {}

    def hold(self, method: str, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._open_at.get(method, 0.0):
            self._open_at[method] = until

    def remaining(self, method: str) -> float:
        """Seconds until `method` may be called again (0: now)."""
        return max(0.0, self._open_at.get(method, 0.0) - self._clock())

    async def wait(self, method: str) -> None:
        # A loop, not an Event: a 429 answered meanwhile moves the deadline on.
        while (left := self.remaining(method)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)


class _ConnectionRetry(AsyncConnectionErrorRetryHandler):
    """slack_sdk's retry of a dropped connection, except for a post whose caller reconciles:
    sent again blindly, a post whose answer was lost would be in the channel twice."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if _CALLER_RECONCILES.get():
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class _RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's retry of a 429, through the gate: every 429 holds its method for its
    `Retry-After` (1 s without one), retried or not, and the retry goes once it is open. A
    post whose caller reconciles is not retried (see the module docstring)."""

    def __init__(self, gate: RetryAfterGate, *, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.gate = gate

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            delay = parse_retry_after(header(response.headers, "Retry-After"))
            self.gate.hold(_method_of(request.url), 1.0 if delay is None else delay)
        if _CALLER_RECONCILES.get():
            return False
        return await super().can_retry_async(
            state=state, request=request, response=response, error=error
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        await self.gate.wait(_method_of(request.url))
        state.increment_current_attempt()


def make_web_client(
    token: str,
    base_url: str = AsyncWebClient.BASE_URL,
    *,
    max_rate_limit_retries: int = 2,
    timeout: int = 10,
    gate: RetryAfterGate | None = None,
) -> AsyncWebClient:
    """An AsyncWebClient that obeys 429 Retry-After (through `gate`, a new one by default)
    and retries dropped connections once (posts whose caller reconciles: never)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            _ConnectionRetry(max_retry_count=1),
            _RateLimitRetry(gate or RetryAfterGate(), max_retry_count=max_rate_limit_retries),
        ],
    )


def _gate_of(client: AsyncWebClient) -> RetryAfterGate:
    """The gate `make_web_client` gave `client`, else a new one (fed by `SlackChat` alone)."""
    for handler in client.retry_handlers or []:
        if isinstance(handler, _RateLimitRetry):
            return handler.gate
    return RetryAfterGate()


def _key_of(message: dict[str, Any]) -> str | None:
    """The key a message was posted with (`post(key=…)`), from its metadata, or None."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != POST_EVENT:
        return None
    payload = metadata.get("event_payload")
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


def translate(method: str, error: Exception) -> Exception:
    """The bot.core.errors equivalent of an SDK or transport error."""
    if isinstance(error, SlackApiError):
        response = error.response
        status = getattr(response, "status_code", 200)
        code = ""
        if isinstance(getattr(response, "data", None), dict):
            code = str(response.get("error", ""))
        if status == 429:
            retry_after = parse_retry_after(header(response.headers, "Retry-After"))
            return TemporaryError(
                f"Slack rate-limited {method}; retry in {retry_after or '?'} s", delay=retry_after
            )
        if status >= 500:
            return Unreachable("Slack", f"{method} answered HTTP {status}")
        if code in AUTH_ERRORS:
            return Forbidden("Slack", code)
        return SlackRefused(method, code or f"HTTP {status}")
    if isinstance(error, aiohttp.ClientError | TimeoutError | SlackClientError):
        return Unreachable("Slack", f"{method}: {type(error).__name__}: {error}")
    return error


class SlackChat:
    """`Chat` over an AsyncWebClient. Usergroup members, user names and the user ids found
    by email (misses included) are cached `ttl` s. Every Web API call is timed for
    `observer` (`bot.adapters.calls`), its wait at a 429's gate not included."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        observer: CallObserver | None = None,
    ) -> None:
        self.client = client
        self.observer = observer
        self.ttl = ttl
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, tuple[float, str]] = {}
        self._by_email: dict[str, tuple[float, str | None]] = {}
        self._channel_ids: dict[str, str] = {}  # channel name → id, as Slack answered
        self.gate = _gate_of(client)

    async def _call(
        self, method: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> AsyncSlackResponse:
        """`call()`, once `method` is no longer held by a 429; errors translated."""
        await self.gate.wait(method)
        with timed(self.observer):
            try:
                return await call()
            except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as e:
                error = translate(method, e)
                if isinstance(e, SlackApiError) and getattr(e.response, "status_code", 0) == 429:
                    delay = error.delay if isinstance(error, TemporaryError) else None
                    self.gate.hold(method, 1.0 if delay is None else delay)
                raise error from e

    async def auth_test(self) -> str:
        """auth.test: who the token is (``@rollbot in Payments (T…)``), for the log; raises
        Forbidden when Slack refuses the token, Unreachable when it cannot be asked."""
        response = await self._call("auth.test", self.client.auth_test)
        return (
            f"@{response.get('user') or '?'} in {response.get('team') or '?'} "
            f"({response.get('team_id') or '?'})"
        )

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        """chat.postMessage. With `key`, the message carries it as metadata for `find_post`
        and the client does not retry it: any failure but Slack's refusal may hide a post
        that was delivered, for the caller to reconcile."""
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        if key is not None:
            kwargs["metadata"] = {"event_type": POST_EVENT, "event_payload": {"key": key}}
        reconciles = _CALLER_RECONCILES.set(key is not None)
        try:
            response = await self._call(
                "chat.postMessage", lambda: self.client.chat_postMessage(**kwargs)
            )
        finally:
            _CALLER_RECONCILES.reset(reconciles)
        ref = MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))
        if not _CHANNEL_ID.fullmatch(channel):
            self._channel_ids[channel.lstrip("#")] = ref.channel
        return ref

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        """The message posted with `key` in `channel` (in the thread of `thread_ts`, when
        given) since `since` (epoch seconds; looked for from `LOOKBACK_SECONDS` earlier), or
        None: conversations.history (conversations.replies for a thread) with
        include_all_metadata, newest pages first, at most `MAX_HISTORY_PAGES` of them."""
        channel_id = await self.channel_id(channel)
        oldest = f"{max(0.0, since - LOOKBACK_SECONDS):.6f}"
        cursor: str | None = None
        for _ in range(MAX_HISTORY_PAGES):
            page: dict[str, Any] = {
                "channel": channel_id,
                "oldest": oldest,
                "include_all_metadata": True,
                "limit": 200,
                "cursor": cursor,
            }
            if thread_ts is None:
                response = await self._call(
                    "conversations.history",
                    functools.partial(self.client.conversations_history, **page),
                )
            else:
                response = await self._call(
                    "conversations.replies",
                    functools.partial(self.client.conversations_replies, ts=thread_ts, **page),
                )
            for message in response.get("messages") or []:
                if isinstance(message, dict) and _key_of(message) == key:
                    return MessageRef(channel=channel_id, ts=str(message["ts"]))
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        return None

    async def channel_id(self, channel: str) -> str:
        """`channel`'s id: an id as it is; a name (``#payments-deploys``) as a post's answer
        told it, else as conversations.list says (public and private channels, paged). A
        name no channel has is SlackRefused channel_not_found."""
        if _CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.lstrip("#")
        cursor: str | None = None
        while name not in self._channel_ids:
            response = await self._call(
                "conversations.list",
                functools.partial(
                    self.client.conversations_list,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                ),
            )
            for found in response.get("channels") or []:
                self._channel_ids[str(found.get("name"))] = str(found.get("id"))
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor and name not in self._channel_ids:
                raise SlackRefused("conversations.list", "channel_not_found")
        return self._channel_ids[name]

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call(
            "chat.update",
            lambda: self.client.chat_update(
                channel=ref.channel, ts=ref.ts, text=text, blocks=blocks
            ),
        )

    async def post_ephemeral(
        self, channel: str, user: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        await self._call("chat.postEphemeral", lambda: self.client.chat_postEphemeral(**kwargs))

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        response = await self._call(
            "views.open", lambda: self.client.views_open(trigger_id=trigger_id, view=view)
        )
        return str((response.get("view") or {}).get("id") or "")

    async def update_view(self, view_id: str, view: dict[str, Any]) -> None:
        """Replace the open modal `view_id` (Slack answers `not_found` once it is closed)."""
        await self._call(
            "views.update", lambda: self.client.views_update(view_id=view_id, view=view)
        )

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        now = self.clock()
        cached = self._members.get(usergroup)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        response = await self._call(
            "usergroups.users.list", lambda: self.client.usergroups_users_list(usergroup=usergroup)
        )
        members = frozenset(str(u) for u in response.get("users") or [])
        self._members[usergroup] = (now, members)
        return members

    async def user_name(self, user_id: str) -> str:
        """The name people see: display name, else real name, else the handle."""
        now = self.clock()
        cached = self._names.get(user_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        response = await self._call("users.info", lambda: self.client.users_info(user=user_id))
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = str(
            profile.get("display_name") or user.get("real_name") or user.get("name") or user_id
        )
        self._names[user_id] = (now, name)
        return name

    async def user_email(self, user_id: str) -> str | None:
        """users.info: the user's profile email (needs users:read.email), or None."""
        response = await self._call("users.info", lambda: self.client.users_info(user=user_id))
        profile = (response.get("user") or {}).get("profile") or {}
        return str(profile.get("email") or "") or None

    async def user_id_by_email(self, email: str) -> str | None:
        """users.lookupByEmail: the Slack user id, or None when no user has that email."""
        key = email.strip().lower()
        now = self.clock()
        cached = self._by_email.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await self._call(
                "users.lookupByEmail", lambda: self.client.users_lookupByEmail(email=email.strip())
            )
        except SlackRefused as e:
            if e.code != "users_not_found":
                raise
            user_id: str | None = None
        else:
            user_id = str((response.get("user") or {}).get("id") or "") or None
        self._by_email[key] = (now, user_id)
        return user_id

    def forget(self) -> None:
        """Drop the caches (e.g. after a usergroup change is announced)."""
        self._members.clear()
        self._names.clear()
        self._by_email.clear()
