"""LaunchDarkly, over its REST API v2 with httpx: the `Flags` port for one project and environment.

    get(flag)   GET   /api/v2/flags/{project}/{flag}?env={environment}
    set(flag)   PATCH /api/v2/flags/{project}/{flag}
                      Content-Type: application/json; domain-model=launchdarkly.semanticpatch
                      {"environmentKey": env, "comment": …,
                       "instructions": [{"kind": "turnFlagOn"}]}
                then  GET … ?env={environment} to read the state back

Requests carry `Authorization: <access token>` (LaunchDarkly wants the bare token) and
`LD-API-Version` pinned to the version this adapter was written against, as LaunchDarkly
recommends for every integration. turnFlagOn/turnFlagOff are idempotent (an instruction
that finds the flag already in that state does nothing), so sending one again after a
timeout is safe.

Rate limits (LaunchDarkly does not publish its budgets; clients are to follow the headers):

- after any response whose `X-Ratelimit-Route-Remaining` (that route: URL pattern and verb)
  or `X-Ratelimit-Global-Remaining` is 0, the next call on that route (or on any route) waits
  until `X-Ratelimit-Reset` (epoch milliseconds);
- a 429 is retried after `Retry-After` seconds (else until `X-Ratelimit-Reset`, else 1 s,
  doubling), at most `max_retries` times;
- no wait is longer than `max_wait` seconds: a longer one raises TemporaryError(delay=…) at
  once, without sending, so the caller decides (a Tier 2 flip must not hang for a minute).

Errors are translated at this border:

    connection refused, DNS failure, dropped connection   → Unreachable("LaunchDarkly", …)
    no answer within `timeout` seconds                     → Unreachable(…, "timed out after N s")
    HTTP 5xx                                               → Unreachable(…, delay=Retry-After)
    HTTP 429, retries exhausted or the wait too long       → TemporaryError(delay=seconds)
    HTTP 409 (a concurrent change)                         → TemporaryError
    HTTP 401 / 403                                         → Forbidden("LaunchDarkly", …)
    HTTP 404 (unknown project, flag or environment)        → TargetNotFound("flag",
                                                              "<project>/<env>", flag)
    the flag read back has no such environment             → TargetNotFound("environment",
                                                              project, env)
    HTTP 400 / 405 (approval required) / 415 / 422         → InvalidRequest with LaunchDarkly's
                                                              own message
    read-back shows another state than the one asked for   → FlipNotApplied (PermanentError)
    a body that is not the API's JSON                      → Unreachable

`sdk_sees()` returns None: what SDKs are served comes from LaunchDarkly's SDK endpoints
(streaming/polling, behind a CDN), which need the environment's SDK key, not an API access
token; the admin API's `environments.{env}.on` is not evidence that any SDK has seen it.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.adapters._http import connect_reason, retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import (
    FlipNotApplied,
    Forbidden,
    InvalidRequest,
    TargetNotFound,
    TemporaryError,
    Unreachable,
)
from bot.core.model import FlagState

SERVICE = "LaunchDarkly"
PROVIDER = "launchdarkly"
API_VERSION = "20240415"
SEMANTIC_PATCH = "application/json; domain-model=launchdarkly.semanticpatch"
_GLOBAL = "*"
#: Seconds added to a wait for `X-Ratelimit-Reset`.
RESET_MARGIN = 0.05


class LaunchDarklyFlags:
    """Reads and flips boolean flags of one LaunchDarkly project and environment.

    `timeout` (seconds) bounds each request. `max_retries` bounds the retries of a 429;
    `max_wait` (seconds) bounds any single rate-limit wait. Pass `client` to share an
    httpx.AsyncClient (then `aclose()` leaves it open). `observer` times each request
    (`bot.adapters.calls`).
    """

    provider = PROVIDER

    def __init__(
        self,
        *,
        base_url: str = "https://app.launchdarkly.com",
        api_token: str,
        project: str,
        environment: str = "production",
        timeout: float = 5.0,
        max_retries: int = 3,
        max_wait: float = 10.0,
        client: httpx.AsyncClient | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self.project, self.environment = project, environment
        self.timeout, self.max_retries, self.max_wait = timeout, max_retries, max_wait
        self._token = api_token
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self.observer = observer
        self._not_before: dict[str, float] = {}  # route (or _GLOBAL) → epoch seconds

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> LaunchDarklyFlags:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ── the Flags port ────────────────────────────────────────────────────────────────

    async def get(self, flag: str) -> FlagState:
        """The flag's state in our environment now. TargetNotFound when absent."""
        response = await self._call("GET", flag, params={"env": self.environment})
        return self._state(flag, _body(response))

    async def set(self, flag: str, enabled: bool, *, comment: str) -> FlagState:
        """Turn the flag on or off with a semantic patch, then read it back.

        Raises FlipNotApplied when the read-back shows the other state.
        """
        body = {
            "environmentKey": self.environment,
            "comment": comment,
            "instructions": [{"kind": "turnFlagOn" if enabled else "turnFlagOff"}],
        }
        await self._call("PATCH", flag, json=body, content_type=SEMANTIC_PATCH)
        state = await self.get(flag)
        if state.enabled != enabled:
            raise FlipNotApplied(
                provider="LaunchDarkly",
                key=flag,
                project=self.project,
                environment=self.environment,
                wanted=enabled,
            )
        return state

    async def sdk_sees(self, flag: str) -> bool | None:
        """None: SDK-facing state needs the environment's SDK key (module docstring)."""
        return None

    # ── HTTP ──────────────────────────────────────────────────────────────────────────

    def _url(self, flag: str) -> str:
        return f"{self.base_url}/api/v2/flags/{_segment(self.project)}/{_segment(flag)}"

    async def _call(
        self,
        method: str,
        flag: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        """Send one request, pacing by the rate-limit headers and retrying 429s; a 2xx
        response or a typed error."""
        route = f"{method} /api/v2/flags/{{projectKey}}/{{featureFlagKey}}"
        headers = {
            "Authorization": self._token,
            "LD-API-Version": API_VERSION,
            "Accept": "application/json",
        }
        if content_type:
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            await self._pace(route)
            response = await self._send(method, self._url(flag), params, json, headers)
            self._note_limits(route, response)
            if response.status_code != 429:
                break
            delay = retry_after(response) or _until_reset(response) or float(2**attempt)
            if attempt >= self.max_retries or delay > self.max_wait:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise TemporaryError(
                    f"LaunchDarkly rate-limited rollbot ({tries}); retry in {delay:g} s",
                    delay=delay,
                )
            attempt += 1
            await asyncio.sleep(delay)
        if response.is_success:
            return response
        raise self._error(response, flag)

    async def _send(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        with timed(self.observer) as call:
            try:
                response = await self._client.request(
                    method, url, params=params, json=body, headers=headers, timeout=self.timeout
                )
            except httpx.TimeoutException as e:
                raise Unreachable(SERVICE, f"timed out after {self.timeout:g} s") from e
            except httpx.ConnectError as e:
                raise Unreachable(
                    SERVICE, f"cannot connect to {self.base_url}: {connect_reason(e)}"
                ) from e
            except httpx.TransportError as e:
                raise Unreachable(SERVICE, f"{type(e).__name__} from {self.base_url}: {e}") from e
            call.status(response.status_code)
        return response

    async def _pace(self, route: str) -> None:
        """Wait until the window of an exhausted route (or global) budget resets, bounded."""
        until = max(self._not_before.get(route, 0.0), self._not_before.get(_GLOBAL, 0.0))
        if until <= 0:
            return
        # A little past the reset: the clocks differ, and timers may fire a tick early.
        wait = until + RESET_MARGIN - time.time()
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise TemporaryError(
                f"LaunchDarkly's rate limit resets in {wait:.1f} s; not waiting that long",
                delay=wait,
            )
        await asyncio.sleep(wait)

    def _note_limits(self, route: str, response: httpx.Response) -> None:
        reset = _reset_at(response)
        for name, key in (
            ("x-ratelimit-route-remaining", route),
            ("x-ratelimit-global-remaining", _GLOBAL),
        ):
            remaining = response.headers.get(name)
            if remaining is None:
                continue
            if remaining.strip() == "0" and reset is not None:
                self._not_before[key] = reset
            else:
                self._not_before.pop(key, None)

    def _error(self, response: httpx.Response, flag: str) -> Exception:
        status = response.status_code
        body = _json(response)
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("code") or "")
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        if status >= 500:
            return Unreachable(SERVICE, detail, delay=retry_after(response))
        if status in (401, 403):
            return Forbidden(SERVICE, detail)
        if status == 404:
            return TargetNotFound("flag", f"{self.project}/{self.environment}", flag)
        if status == 409:
            return TemporaryError(f"LaunchDarkly reported a conflicting change ({detail})")
        if status == 405:
            return InvalidRequest(
                f"LaunchDarkly refused to change `{flag}` directly ({detail}); the environment "
                "may require an approval request."
            )
        return InvalidRequest(f"LaunchDarkly refused the request for `{flag}` ({detail}).")

    def _state(self, flag: str, body: Any) -> FlagState:
        try:
            environments = body["environments"]
            config = environments.get(self.environment)
            if config is None:  # the flag exists, but not in our environment
                raise TargetNotFound("environment", self.project, self.environment)
            on = config["on"]
            if not isinstance(on, bool):
                raise TypeError(f"environments.{self.environment}.on is {on!r}")
            modified = config.get("lastModified")
        except (KeyError, TypeError, AttributeError) as e:
            raise Unreachable(
                SERVICE, f"answered a malformed flag ({type(e).__name__}: {e})"
            ) from e
        updated_at = (
            datetime.fromtimestamp(modified / 1000, tz=UTC)
            if isinstance(modified, int | float)
            else None
        )
        return FlagState(
            key=str(body.get("key", flag)),
            project=self.project,
            environment=self.environment,
            enabled=on,
            provider=PROVIDER,
            updated_at=updated_at,
        )


# ── helpers ───────────────────────────────────────────────────────────────────────────


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _body(response: httpx.Response) -> Any:
    body = _json(response)
    if not isinstance(body, dict):
        raise Unreachable(SERVICE, f"HTTP {response.status_code} without the API's JSON")
    return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reset_at(response: httpx.Response) -> float | None:
    """`X-Ratelimit-Reset` (epoch milliseconds) as epoch seconds."""
    raw = response.headers.get("x-ratelimit-reset")
    if raw is None:
        return None
    try:
        return int(raw.strip()) / 1000
    except ValueError:
        return None


def _until_reset(response: httpx.Response) -> float | None:
    reset = _reset_at(response)
    if reset is None:
        return None
    return max(0.0, reset - time.time()) or None
