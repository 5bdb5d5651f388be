"""Slack, over slack_sdk's AsyncWebClient: the `Chat` port of bot.core.ports.

Errors are translated at this border:

    HTTP 429 (after the client's own retries)   → TemporaryError(delay=Retry-After)
    HTTP 5xx, connection errors, timeouts       → Unreachable("Slack", …)
    invalid_auth, not_authed, token_revoked, …  → Forbidden("Slack", code)
    any other `{"ok": false, "error": code}`    → SlackRefused (a PermanentError with `.code`)

`make_web_client` installs slack_sdk's `AsyncRateLimitErrorRetryHandler`, so Slack's 429
`Retry-After` is obeyed by the client itself before any of this is raised.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.adapters._http import header, parse_retry_after
from bot.core.errors import Forbidden, PermanentError, TemporaryError, Unreachable
from bot.core.model import MessageRef

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


def make_web_client(
    token: str,
    base_url: str = AsyncWebClient.BASE_URL,
    *,
    max_rate_limit_retries: int = 2,
    timeout: int = 10,
) -> AsyncWebClient:
    """An AsyncWebClient that obeys 429 Retry-After and retries dropped connections once."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries),
        ],
    )


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
    by email (misses included) are cached `ttl` s."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._names: dict[str, tuple[float, str]] = {}
        self._by_email: dict[str, tuple[float, str | None]] = {}

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as e:
            raise translate(method, e) from e

    async def auth_test(self) -> str:
        """auth.test: who the token is (``@rollbot in Payments (T…)``), for the log; raises
        Forbidden when Slack refuses the token, Unreachable when it cannot be asked."""
        response = await self._call("auth.test", self.client.auth_test())
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
    ) -> MessageRef:
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        response = await self._call("chat.postMessage", self.client.chat_postMessage(**kwargs))
        return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call(
            "chat.update",
            self.client.chat_update(channel=ref.channel, ts=ref.ts, text=text, blocks=blocks),
        )

    async def post_ephemeral(
        self, channel: str, user: str, *, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        await self._call("chat.postEphemeral", self.client.chat_postEphemeral(**kwargs))

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str:
        response = await self._call(
            "views.open", self.client.views_open(trigger_id=trigger_id, view=view)
        )
        return str((response.get("view") or {}).get("id") or "")

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        now = self.clock()
        cached = self._members.get(usergroup)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        response = await self._call(
            "usergroups.users.list", self.client.usergroups_users_list(usergroup=usergroup)
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
        response = await self._call("users.info", self.client.users_info(user=user_id))
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = str(
            profile.get("display_name") or user.get("real_name") or user.get("name") or user_id
        )
        self._names[user_id] = (now, name)
        return name

    async def user_email(self, user_id: str) -> str | None:
        """users.info: the user's profile email (needs users:read.email), or None."""
        response = await self._call("users.info", self.client.users_info(user=user_id))
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
                "users.lookupByEmail", self.client.users_lookupByEmail(email=email.strip())
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
