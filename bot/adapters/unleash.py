"""Unleash, over its admin and client HTTP APIs, with httpx: the only place that talks to it.

One project and one environment per instance (the `Flags` port). Checked against a real
unleash-server 7.5 (tests/integration/adapters/test_unleash.py):

    get(flag)        GET  /api/admin/projects/{project}/features/{flag}
                          → the environment's `enabled` in `environments[]`
    set(flag, on)    POST /api/admin/projects/{project}/features/{flag}/environments/{env}/on|off
                          then the read-back above; the read-back must say `on`
    sdk_sees(flag)   GET  /api/client/features/{flag} with a client (backend) token, which is
                          bound to one environment by Unleash itself → its `enabled`

Tokens go in the `Authorization` header as they are (Unleash's format: no "Bearer"; admin
tokens look like `*:*.<secret>`, client tokens `<project>:<env>.<secret>`).

Errors are translated at this border:

    connection refused, DNS failure, dropped connection   → Unreachable("Unleash", …)
    no answer within `timeout` seconds                     → Unreachable(…, "timed out after N s")
    HTTP 5xx                                               → Unreachable(…, "HTTP 503: <message>",
                                                              delay=Retry-After)
    HTTP 429                                               → TemporaryError(delay=Retry-After)
    HTTP 401 / 403                                         → Forbidden("Unleash", …)
    HTTP 404 for the flag                                  → TargetNotFound("flag",
                                                              "<project>/<env>", flag)
    the flag exists but not in the environment             → TargetNotFound("environment",
                                                              project, env)
    the flip answered 2xx but the read-back disagrees      → FlipNotApplied (a PermanentError:
                                                              report it as failed, never done)
    any other status, or a body that is not Unleash's JSON → InvalidRequest / Unreachable

`set()` takes a `comment` because the port does; Unleash's on/off endpoints have no place
for one (its event log records the token's name as the author), so the comment lives in
rollbot's own audit log.
"""

from __future__ import annotations

import urllib.parse
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

SERVICE = "Unleash"
PROVIDER = "unleash"


class UnleashFlags:
    """Reads and flips feature flags in one Unleash project and environment.

    `admin_token` is an admin API token (or a personal access token) allowed to update the
    project's flags; `client_token`, when given, is a client (backend) token for the same
    environment, used only by `sdk_sees()`. `timeout` (seconds) bounds each request. Pass
    `client` to share an httpx.AsyncClient (then `aclose()` leaves it open). `observer`
    times each request (`bot.adapters.calls`).
    """

    provider = PROVIDER

    def __init__(
        self,
        *,
        base_url: str,
        admin_token: str,
        project: str = "default",
        environment: str = "production",
        client_token: str | None = None,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if not admin_token:
            raise ValueError("admin_token is required")
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.environment = environment
        self.timeout = timeout
        self._admin_token = admin_token
        self._client_token = client_token or None
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self.observer = observer

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> UnleashFlags:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ── the Flags port ────────────────────────────────────────────────────────────────

    async def get(self, flag: str) -> FlagState:
        """The flag's state in the environment now (admin API, straight from Unleash's DB)."""
        response = await self._request("GET", self._feature_path(flag), self._admin_token)
        self._raise_for_status(response, flag)
        return self._state(flag, _object(response))

    async def set(self, flag: str, enabled: bool, *, comment: str) -> FlagState:
        """Turn the flag on or off in the environment, then read it back.

        Raises FlipNotApplied when the read-back disagrees. `comment` is not sent (see the
        module docstring). Turning on a flag without strategies makes Unleash add its
        default strategy (100 %), so "on" means served as on.
        """
        path = (
            f"{self._feature_path(flag)}/environments/"
            f"{_segment(self.environment)}/{'on' if enabled else 'off'}"
        )
        response = await self._request("POST", path, self._admin_token)
        self._raise_for_status(response, flag, environment_in_path=True)
        state = await self.get(flag)
        if state.enabled != enabled:
            raise FlipNotApplied(
                provider="Unleash",
                key=flag,
                project=self.project,
                environment=self.environment,
                wanted=enabled,
            )
        return state

    async def sdk_sees(self, flag: str) -> bool | None:
        """Whether Unleash serves the flag as enabled to SDKs in the client token's
        environment now; None without a client token.

        This is the feature's `enabled` in the client API, the switch SDKs obey before they
        evaluate strategies: a flag that is on with a partial rollout reads True here.
        A flag the client API does not serve (404) reads False: SDKs treat unknown flags
        as off. Unleash caches the client API per revision, so this can trail the admin
        API briefly (about a second); callers poll it with a deadline.
        """
        if self._client_token is None:
            return None
        path = f"/api/client/features/{_segment(flag)}"
        response = await self._request("GET", path, self._client_token)
        if response.status_code == 404:
            return False
        self._raise_for_status(response, flag, what="the client API")
        enabled = _object(response).get("enabled")
        if not isinstance(enabled, bool):
            raise Unreachable(SERVICE, f"the client API answered `{flag}` without `enabled`")
        return enabled

    # ── HTTP ──────────────────────────────────────────────────────────────────────────

    def _feature_path(self, flag: str) -> str:
        return f"/api/admin/projects/{_segment(self.project)}/features/{_segment(flag)}"

    async def _request(self, method: str, path: str, token: str) -> httpx.Response:
        url = self.base_url + path
        headers = {"Authorization": token, "Accept": "application/json"}
        with timed(self.observer) as call:
            try:
                response = await self._client.request(
                    method, url, headers=headers, timeout=self.timeout
                )
            except httpx.TimeoutException as e:
                raise Unreachable(SERVICE, f"timed out after {self.timeout:g} s") from e
            except httpx.ConnectError as e:
                reason = connect_reason(e)
                raise Unreachable(SERVICE, f"cannot connect to {self.base_url}: {reason}") from e
            except httpx.TransportError as e:
                raise Unreachable(SERVICE, f"{type(e).__name__} from {self.base_url}: {e}") from e
            call.status(response.status_code)
        return response

    def _raise_for_status(
        self,
        response: httpx.Response,
        flag: str,
        *,
        environment_in_path: bool = False,
        what: str = "the admin API",
    ) -> None:
        status = response.status_code
        if status < 300:
            return
        message = _message(response)
        said = f": {message}" if message else ""
        if status == 429:
            delay = retry_after(response)
            raise TemporaryError(
                f"Unleash rate-limited rollbot; retry in {_seconds(delay)}", delay=delay
            )
        if status >= 500:
            raise Unreachable(SERVICE, f"HTTP {status}{said}", delay=retry_after(response))
        if status in (401, 403):
            raise Forbidden(SERVICE, f"HTTP {status} from {what}{said}")
        if status == 404:
            # The flip's path also names the environment; Unleash says which one is missing
            # ("Could not find environment production for feature: …").
            if environment_in_path and "environment" in message.lower():
                raise TargetNotFound("environment", self.project, self.environment)
            if _object_or_none(response) is None:
                raise InvalidRequest(
                    f"Unleash answered HTTP 404 without its JSON at "
                    f"{response.request.url.copy_with(query=None)} (is the Unleash URL right?)"
                )
            raise TargetNotFound("flag", f"{self.project}/{self.environment}", flag)
        raise InvalidRequest(f"Unleash refused the request to {what} (HTTP {status}){said}")

    def _state(self, flag: str, body: dict[str, Any]) -> FlagState:
        environments = body.get("environments")
        if not isinstance(environments, list):
            raise Unreachable(SERVICE, f"answered `{flag}` without its environments")
        for env in environments:
            if isinstance(env, dict) and env.get("name") == self.environment:
                enabled = env.get("enabled")
                if not isinstance(enabled, bool):
                    raise Unreachable(SERVICE, f"answered `{flag}` without `enabled`")
                return FlagState(
                    key=str(body.get("name") or flag),
                    project=self.project,
                    environment=self.environment,
                    enabled=enabled,
                    provider=PROVIDER,
                )
        raise TargetNotFound("environment", self.project, self.environment)


def _seconds(delay: float | None) -> str:
    return "a moment" if delay is None else f"{delay:g} s"


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _object_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _object(response: httpx.Response) -> dict[str, Any]:
    body = _object_or_none(response)
    if body is None:
        raise Unreachable(SERVICE, f"HTTP {response.status_code} without Unleash's JSON")
    return body


def _message(response: httpx.Response) -> str:
    """Unleash's own error text: `message` (plus the first of `details` when it differs)."""
    body = _object_or_none(response)
    if body is None:
        return ""
    message = str(body.get("message") or body.get("error") or "")
    details = body.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        extra = str(details[0].get("message") or "")
        if extra and extra != message:
            message = f"{message} ({extra})" if message else extra
    return message
