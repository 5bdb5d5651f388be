"""A LaunchDarkly REST API v2 server (the part rollbot uses), for the demo and the tests.

`LaunchDarklySim` answers over real HTTP, in its own thread and event loop, like the other
sims in `bot.sim`. It follows LaunchDarkly's published REST API v2 (the overview in
https://app.launchdarkly.com/api/v2/openapi.json, mirrored in the API clients' READMEs, and
the "Get feature flag" / "Update feature flag" pages):

    GET   /api/v2/flags/{projectKey}/{featureFlagKey}[?env=<key>…]
          the flag's detailed representation (`key`, `name`, `kind`, `_version`,
          `creationDate`, `variations`, `defaults`, `_links`, `environments.{env}` with `on`,
          `lastModified` (epoch ms), `version`, `_site`, `_environmentName`, …); `env`
          filters `environments` to the keys given
    PATCH /api/v2/flags/{projectKey}/{featureFlagKey}
          `Content-Type: application/json; domain-model=launchdarkly.semanticpatch` and
          `{"environmentKey": …, "comment": …, "instructions": [{"kind": "turnFlagOn"}]}`;
          200 with the updated flag

Faithful to the docs:

- `Authorization: <access token>` (no scheme); anything else → 401
  `{"code": "unauthorized", "message": "Invalid access token"}`. A token added with
  `role="reader"` may read but gets 403 `{"code": "forbidden", …}` on PATCH.
- Errors use LaunchDarkly's common format `{"code", "message", "id"}` with the codes and
  example messages of its error representations (`not_found` / "Invalid resource
  identifier", `invalid_request`, `rate_limited` / "You've exceeded the API rate limit. Try
  again later.").
- Semantic patches are all-or-nothing: any invalid instruction (an unknown `kind`, or
  `turnFlagOn`/`turnFlagOff` without `environmentKey`) → 400 and nothing changes; an
  instruction that finds the flag already in the requested state silently does nothing
  (neither `_version` nor the environment's `version` moves).
- A semantic-patch body sent as plain `application/json` is read as a JSON patch and
  answered 400, as the docs say.
- Rate limits: every authenticated response carries `X-Ratelimit-Route-Remaining` and
  `X-Ratelimit-Global-Remaining` (what is left in the window) and `X-Ratelimit-Reset`
  (the window's end, epoch milliseconds). A *route* is a URL pattern and verb (GET and PATCH
  of a flag are two routes). Beyond `route_budget` per route or `global_budget` in total per
  `window` seconds (LaunchDarkly: ten) → 429 `rate_limited` with those headers and
  `Retry-After` (whole seconds). LaunchDarkly does not publish its budgets; these are knobs.

Simplified (not needed by rollbot, or not documented precisely enough to copy):

- Only turnFlagOn / turnFlagOff are executed; every other instruction kind (documented or
  not) is answered 400 like an unknown one. JSON patch and JSON merge patch bodies are
  answered 400 too (LaunchDarkly would apply them).
- A Content-Type that is not JSON → 415 `unsupported_media_type` (the docs only say bodies
  must be JSON; the exact status is not documented). An unknown `environmentKey` → 404
  `not_found` (not documented either).
- No approvals (405), scheduled-change conflicts, `ignoreConflicts`, `LD-API-Version`
  differences (the header is recorded, not interpreted), pagination, or IP-based limits.
- Test controls: `force_429(n, retry_after=…)` answers the next `n` authenticated requests
  429 whatever the budgets say; `ignore_writes=True` answers PATCH 200 with the flag
  unchanged (a provider that acknowledges and drops a write, for read-back tests);
  `hold_answers(n)` applies the next `n` PATCHes and holds their answers until
  `release_answers()` (the Kubernetes sim's switch, for killing rollbot mid-flip).
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.sim._server import RecordedRequest, ThreadedServer
from bot.sim.kube.http import HeldAnswers

DEFAULT_TOKEN = "api-00000000-0000-4000-8000-rollbotsim000"
SEMANTIC_PATCH_DOMAIN = "launchdarkly.semanticpatch"
FLAG_ROUTE = "/api/v2/flags/{projectKey}/{featureFlagKey}"

#: Example messages of LaunchDarkly's error representations (UnauthorizedErrorRep, …).
MESSAGES = {
    "unauthorized": "Invalid access token",
    "forbidden": "Forbidden. Access to the requested resource was denied.",
    "not_found": "Invalid resource identifier",
    "invalid_request": "Invalid request body",
    "rate_limited": "You've exceeded the API rate limit. Try again later.",
    "unsupported_media_type": "Unsupported media type",
}

_TOGGLES = {"turnFlagOn": True, "turnFlagOff": False}


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One change the sim applied (not the no-op instructions)."""

    project: str
    key: str
    environment: str
    on: bool
    comment: str
    at: float


@dataclass(slots=True)
class _Window:
    start: float
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(message or MESSAGES.get(code, code))
        self.status, self.code = status, code
        self.message = message or MESSAGES.get(code, code)


class LaunchDarklySim:
    """LaunchDarkly's flag API on a loopback port; see the module docstring.

    Pass `url` as the adapter's `base_url`. `token` is a writer token; add more with
    `add_token`. `route_budget` / `global_budget` requests per `window` seconds.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        *,
        route_budget: int = 25,
        global_budget: int = 100,
        window: float = 10.0,
        ignore_writes: bool = False,
    ) -> None:
        self.host, self._port = host, port
        self.route_budget, self.global_budget, self.window = route_budget, global_budget, window
        self.ignore_writes = ignore_writes
        self._lock = threading.RLock()
        self._tokens: dict[str, str] = {token: "writer"}
        self._flags: dict[tuple[str, str], dict[str, Any]] = {}
        self._requests: list[RecordedRequest] = []
        self._changes: list[FlagChange] = []
        self._forced: list[int] = []  # Retry-After of forced 429s, in order
        self._rate: _Window | None = None
        self._holds = HeldAnswers()
        self._server: ThreadedServer | None = None

    # ── lifecycle ─────────────────────────────────────────────────────────────────────

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LaunchDarklySim is not started")
        return self._server.url

    def start(self) -> LaunchDarklySim:
        server = ThreadedServer(
            self._app(), host=self.host, port=self._port, name="launchdarkly-sim"
        )
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> LaunchDarklySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ── test controls ─────────────────────────────────────────────────────────────────

    def add_token(self, token: str, *, role: str = "writer") -> None:
        """Accept `token`; role "reader" may GET but not PATCH (403)."""
        if role not in ("reader", "writer"):
            raise ValueError("role must be 'reader' or 'writer'")
        with self._lock:
            self._tokens[token] = role

    def add_flag(
        self,
        project: str,
        key: str,
        *,
        environments: Iterable[str] = ("production",),
        on: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Create a boolean flag (variations true/false) with `on` in every environment."""
        now = _now_ms()
        flag: dict[str, Any] = {
            "name": name or key,
            "kind": "boolean",
            "key": key,
            "_version": 1,
            "creationDate": now,
            "description": "",
            "variations": [
                {"_id": str(uuid.uuid4()), "value": True, "name": "True"},
                {"_id": str(uuid.uuid4()), "value": False, "name": "False"},
            ],
            "temporary": True,
            "tags": [],
            "_links": {
                "parent": {"href": f"/api/v2/flags/{project}", "type": "application/json"},
                "self": {"href": f"/api/v2/flags/{project}/{key}", "type": "application/json"},
            },
            "experiments": {"baselineIdx": 0, "items": []},
            "customProperties": {},
            "archived": False,
            "deprecated": False,
            "clientSideAvailability": {"usingMobileKey": False, "usingEnvironmentId": False},
            "includeInSnippet": False,
            "maintainerId": "569f183514f4432160000007",
            "defaults": {"onVariation": 0, "offVariation": 1},
            "goalIds": [],
            "environments": {env: _environment(project, env, key, on, now) for env in environments},
        }
        with self._lock:
            self._flags[(project, key)] = flag
        return _copy(flag)

    def force_429(self, n: int, retry_after: int = 1) -> None:
        """Answer the next `n` authenticated requests 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._forced.extend([retry_after] * n)

    def hold_answers(self, n: int = 1, *, method: str = "PATCH", path_contains: str = "") -> None:
        """The next `n` `method` requests whose path contains `path_contains` are answered
        as usual (a PATCH changes the flag), but their answers hang until
        `release_answers()`; a caller that goes away meanwhile never gets one
        (`lost_answers`), as when rollbot is killed mid-flip: LaunchDarkly has made the
        change all the same."""
        self._holds.add(n, method, path_contains)

    def release_answers(self) -> None:
        """Answer every held request; the `hold_answers` rules left lapse."""
        self._holds.release()

    @property
    def held_answers(self) -> int:
        """How many answers are hanging now."""
        return self._holds.held

    @property
    def lost_answers(self) -> int:
        """How many held answers were never delivered: their caller went away first."""
        return self._holds.lost

    def set_on(self, project: str, key: str, environment: str, on: bool) -> None:
        """Change a flag behind rollbot's back (someone in the LaunchDarkly UI)."""
        with self._lock:
            self._apply(project, self._flags[(project, key)], environment, on, "changed in the UI")

    def remove_flag(self, project: str, key: str) -> None:
        """Delete a flag (someone archived it): rollbot then gets LD's 404."""
        with self._lock:
            self._flags.pop((project, key), None)

    # ── inspection ────────────────────────────────────────────────────────────────────

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request, refused ones too, oldest first. `headers["authorization"]` is
        kept as sent: LaunchDarkly's is the access token itself (tests check it is)."""
        with self._lock:
            return list(self._requests)

    @property
    def changes(self) -> list[FlagChange]:
        with self._lock:
            return list(self._changes)

    def flag(self, project: str, key: str) -> dict[str, Any]:
        """The flag's full representation now (a copy); KeyError when absent."""
        with self._lock:
            return _copy(self._flags[(project, key)])

    def is_on(self, project: str, key: str, environment: str = "production") -> bool:
        return bool(self.flag(project, key)["environments"][environment]["on"])

    # ── HTTP ──────────────────────────────────────────────────────────────────────────

    def _app(self) -> Starlette:
        return Starlette(routes=[Route(FLAG_ROUTE, self._handle, methods=["GET", "PATCH"])])

    async def _handle(self, request: Request) -> JSONResponse:
        arrived = time.time()
        data = await request.body()
        raw = data.decode("utf-8", "replace")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        project = request.path_params["projectKey"]
        key = request.path_params["featureFlagKey"]
        status, payload, headers = self._answer(request, project, key, raw, body)
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    query=list(request.query_params.multi_items()),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    raw=data,
                    at=arrived,
                    status=status,
                    response_headers=dict(headers),
                    response=payload,
                )
            )
        if self._holds.take(request.method, request.url.path):
            await self._holds.wait(request)  # applied and recorded: only the answer waits
        return JSONResponse(payload, status_code=status, headers=headers)

    def _answer(
        self,
        request: Request,
        project: str,
        key: str,
        raw: str,
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            role = self._tokens.get(request.headers.get("authorization", ""))
            if role is None:
                return _error(_ApiError(401, "unauthorized"), {})
            limit_headers, retry_after = self._count(f"{request.method} {FLAG_ROUTE}")
            if self._forced:
                retry_after = self._forced.pop(0)
            if retry_after is not None:
                headers = {**limit_headers, "Retry-After": str(retry_after)}
                return _error(_ApiError(429, "rate_limited"), headers)
            try:
                if request.method == "GET":
                    return (
                        200,
                        self._get(project, key, request.query_params.getlist("env")),
                        limit_headers,
                    )
                if role != "writer":
                    raise _ApiError(403, "forbidden")
                return 200, self._patch(project, key, request, raw, body), limit_headers
            except _ApiError as e:
                return _error(e, limit_headers)

    def _count(self, route: str) -> tuple[dict[str, str], int | None]:
        """Count one request against its route and the global budget (lock held)."""
        now = time.time()
        if self._rate is None or now >= self._rate.start + self.window:
            self._rate = _Window(start=now)
        rate = self._rate
        rate.counts[route] = rate.counts.get(route, 0) + 1
        rate.total += 1
        reset = rate.start + self.window
        route_left = self.route_budget - rate.counts[route]
        global_left = self.global_budget - rate.total
        headers = {
            "X-Ratelimit-Route-Remaining": str(max(0, route_left)),
            "X-Ratelimit-Global-Remaining": str(max(0, global_left)),
            "X-Ratelimit-Reset": str(math.ceil(reset * 1000)),
        }
        if route_left < 0 or global_left < 0:
            return headers, max(1, math.ceil(reset - now))
        return headers, None

    def _find(self, project: str, key: str) -> dict[str, Any]:
        try:
            return self._flags[(project, key)]
        except KeyError:
            raise _ApiError(404, "not_found") from None

    def _get(self, project: str, key: str, envs: list[str]) -> dict[str, Any]:
        flag = _copy(self._find(project, key))
        if envs:
            wanted = {e for value in envs for e in value.split(",")}
            flag["environments"] = {k: v for k, v in flag["environments"].items() if k in wanted}
        return flag

    def _patch(
        self, project: str, key: str, request: Request, raw: str, body: Any
    ) -> dict[str, Any]:
        flag = self._find(project, key)
        media_type, params = _content_type(request.headers.get("content-type", ""))
        if media_type != "application/json":
            raise _ApiError(415, "unsupported_media_type")
        if not raw or isinstance(body, str):
            raise _ApiError(400, "invalid_request")
        if params.get("domain-model") != SEMANTIC_PATCH_DOMAIN:
            if isinstance(body, dict) and "instructions" in body:
                raise _ApiError(
                    400,
                    "invalid_request",
                    "Invalid JSON patch: a semantic patch needs the Content-Type"
                    f" parameter domain-model={SEMANTIC_PATCH_DOMAIN}",
                )
            raise _ApiError(400, "invalid_request", "JSON patch and merge patch are not simulated")
        changes = _validate(flag, body)
        if not self.ignore_writes:
            comment = str(body.get("comment") or "")
            for environment, on in changes:
                self._apply(project, flag, environment, on, comment)
        return _copy(flag)

    def _apply(
        self, project: str, flag: dict[str, Any], environment: str, on: bool, comment: str
    ) -> None:
        config = flag["environments"][environment]
        if config["on"] == on:
            return  # semantic patch: already in the requested state, silently nothing
        now = _now_ms()
        config["on"] = on
        config["version"] += 1
        config["lastModified"] = now
        flag["_version"] += 1
        self._changes.append(FlagChange(project, flag["key"], environment, on, comment, now / 1000))


# ── helpers ───────────────────────────────────────────────────────────────────────────


def _validate(flag: dict[str, Any], body: Any) -> list[tuple[str, bool]]:
    """All instructions checked before any is applied (semantic patches are atomic)."""
    if not isinstance(body, dict):
        raise _ApiError(400, "invalid_request")
    instructions = body.get("instructions")
    if not isinstance(instructions, list) or not instructions:
        raise _ApiError(400, "invalid_request", "instructions are required")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _ApiError(400, "invalid_request", "comment must be a string")
    env = body.get("environmentKey")
    changes = []
    for instruction in instructions:
        kind = instruction.get("kind") if isinstance(instruction, dict) else None
        if kind not in _TOGGLES:
            raise _ApiError(400, "invalid_request", f"unknown instruction kind {kind!r}")
        if not isinstance(env, str) or not env:
            raise _ApiError(
                400, "invalid_request", f"environmentKey is required for instruction {kind}"
            )
        if env not in flag["environments"]:
            raise _ApiError(404, "not_found", f"Unknown environment {env!r}")
        changes.append((env, _TOGGLES[kind]))
    return changes


def _environment(project: str, env: str, key: str, on: bool, now: int) -> dict[str, Any]:
    return {
        "on": on,
        "archived": False,
        "salt": secrets.token_hex(16),
        "sel": secrets.token_hex(18),
        "lastModified": now,
        "version": 1,
        "targets": [],
        "contextTargets": [],
        "rules": [],
        "fallthrough": {"variation": 0},
        "offVariation": 1,
        "prerequisites": [],
        "_site": {"href": f"/{project}/{env}/features/{key}", "type": "text/html"},
        "_environmentName": env.replace("-", " ").title(),
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "_summary": {
            "variations": {
                "0": {"rules": 0, "nullRules": 0, "targets": 0, "isFallthrough": True},
                "1": {"rules": 0, "nullRules": 0, "targets": 0, "isOff": True},
            },
            "prerequisites": 0,
        },
    }


def _error(e: _ApiError, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    return e.status, {"code": e.code, "message": e.message, "id": str(uuid.uuid4())}, headers


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    media_type, *rest = value.split(";")
    params = {}
    for part in rest:
        name, _, val = part.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return media_type.strip().lower(), params


def _now_ms() -> int:
    return int(time.time() * 1000)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied
