"""PagerDuty, over the official `pagerduty` client (REST API v2): the `OnCall` port.

This is the only module that imports `pagerduty`. The client is synchronous (httpx
underneath), so every call runs in `asyncio.to_thread`.

The client's defaults are tamed here:

- its retry on HTTP 429 is unbounded by default (``retry`` empty means "retry 429 for
  ever", sleeping 1.5 s × 2ⁿ and ignoring ``Retry-After``): it is bounded to
  `max_429_retries` through ``retry[429]`` and ``max_http_attempts``;
- its backoff (``sleep_timer``) starts at `backoff` seconds instead of 3 s, so a person
  waiting on an authorisation is not kept for tens of seconds;
- connection errors are retried `max_network_retries` times (default 3 with the same
  long sleeps), and each request has a `timeout` (default 60 s).

Errors are translated at this border:

    401, 403                                    → Forbidden("PagerDuty", …)
    429 after the bounded retries               → Unreachable("PagerDuty", …, delay=Retry-After)
    5xx, connection errors, timeouts, TLS       → Unreachable("PagerDuty", …)
    any other 4xx                               → PagerDutyRefused (a PermanentError)
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import pagerduty

from bot.core.errors import Forbidden, PermanentError, Unreachable

SERVICE = "PagerDuty"


class PagerDutyRefused(PermanentError):
    """PagerDuty answered a 4xx other than 401/403/429; retrying the same call will not help."""

    def __init__(self, what: str, status: int, detail: str) -> None:
        super().__init__(f"PagerDuty refused {what}: HTTP {status} {detail}".rstrip())
        self.what, self.status, self.detail = what, status, detail


class PagerDutyOnCall:
    """`OnCall` over `pagerduty.RestApiV2Client`. Answers are cached `ttl` seconds.

    `ca_file` is the CA bundle to trust instead of the system's (the simulations serve
    HTTPS with a test CA; the client refuses plain http base URLs).
    """

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = "https://api.pagerduty.com",
        timeout: float = 5.0,
        max_429_retries: int = 2,
        max_network_retries: int = 1,
        backoff: float = 0.5,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        ca_file: str | None = None,
        page_size: int = 100,
    ) -> None:
        if max_429_retries < 0 or max_network_retries < 0:
            raise ValueError("retry counts cannot be negative")
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_file) if ca_file else True
        )
        try:
            client = pagerduty.RestApiV2Client(api_token, base_url=base_url, verify=verify)
        except pagerduty.UrlError as e:
            raise ValueError(f"PagerDuty base URL {base_url!r}: {e}") from e
        client.timeout = timeout  # type: ignore[assignment]  # declared int; httpx takes float
        # For a status in `retry`, the client stops retrying (and returns the response)
        # once it has retried retry[status] times or more than max_http_attempts times in
        # all; retry[429] = 0 would mean "the default", i.e. for ever. So retry[429] >= 1
        # and max_http_attempts = n - 1 stop it after exactly n retries, n = 0 included.
        client.retry = {429: max(1, max_429_retries)}
        client.max_http_attempts = max_429_retries - 1
        client.max_network_attempts = max_network_retries
        # The first sleep is sleep_timer × sleep_timer_base, then it doubles.
        client.sleep_timer = backoff / client.sleep_timer_base
        self.client = client
        self.base_url = base_url
        self.max_429_retries = max_429_retries
        self.ttl = ttl
        self.clock = clock
        self.page_size = page_size
        self._on_call: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def on_call_emails(self, escalation_policy_id: str) -> frozenset[str]:
        """Emails of everyone on call now for the escalation policy, at any level."""
        cached = self._fresh(escalation_policy_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(escalation_policy_id, asyncio.Lock())
        async with lock:  # one request per policy at a time; latecomers read the cache
            cached = self._fresh(escalation_policy_id)
            if cached is not None:
                return cached
            emails = await asyncio.to_thread(self._read_on_call, escalation_policy_id)
            self._on_call[escalation_policy_id] = (self.clock(), emails)
            return emails

    async def service_description(self, service_id: str) -> str:
        """The PagerDuty service's description (where teams link the runbook)."""
        return await asyncio.to_thread(self._read_service_description, service_id)

    def forget(self) -> None:
        """Drop the cache (e.g. after a hand-off is announced)."""
        self._on_call.clear()

    def close(self) -> None:
        self.client.close()

    def _fresh(self, escalation_policy_id: str) -> frozenset[str] | None:
        cached = self._on_call.get(escalation_policy_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        return None

    # ------------------------------------------------------------------ in a worker thread

    def _read_service_description(self, service_id: str) -> str:
        try:
            service = self.client.rget(f"/services/{service_id}")
        except pagerduty.Error as e:
            raise translate(f"service {service_id}", e) from e
        return str((service or {}).get("description") or "")

    def _read_on_call(self, escalation_policy_id: str) -> frozenset[str]:
        what = f"the on-calls of escalation policy {escalation_policy_id}"
        params = {"escalation_policy_ids[]": [escalation_policy_id], "include[]": ["users"]}
        try:
            oncalls = list(
                self.client.iter_all("/oncalls", params=params, page_size=self.page_size)
            )
            emails: set[str] = set()
            for oncall in oncalls:
                user = oncall.get("user") or {}
                email = user.get("email")
                if not email and user.get("id"):
                    # a bare user_reference (include[] ignored): read the user itself
                    email = self.client.rget(f"/users/{user['id']}").get("email")
                if email:
                    emails.add(str(email).strip())
            return frozenset(emails)
        except pagerduty.Error as e:
            raise translate(what, e) from e


def translate(what: str, error: pagerduty.Error) -> Exception:
    """The bot.core.errors equivalent of a `pagerduty` client error."""
    response = getattr(error, "response", None)
    if response is None:
        cause = error.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(error)
        return Unreachable(SERVICE, f"{what}: {detail}")
    status = int(response.status_code)
    message = _error_message(response)
    if status in (401, 403):
        return Forbidden(SERVICE, f"HTTP {status} {message}".strip())
    if status == 429:
        retry_after = _retry_after(response.headers)
        return Unreachable(
            SERVICE,
            f"rate-limited (HTTP 429) reading {what}, still after retries",
            delay=retry_after,
        )
    if status >= 500:
        return Unreachable(SERVICE, f"{what}: HTTP {status} {message}".strip())
    if status < 400:  # e.g. a 200 whose body is not the JSON it should be
        return Unreachable(SERVICE, f"{what}: unexpected answer: {error}")
    return PagerDutyRefused(what, status, message)


def _error_message(response: Any) -> str:
    """`{"error": {"message": …, "code": …}}` → "Authentication failed (code 2006)"."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    message = str(error.get("message") or "")
    code = error.get("code")
    return f"{message} (code {code})" if code is not None else message


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
