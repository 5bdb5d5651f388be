"""`JiraSim`: the Jira sim's HTTP server. It owns the ASGI app and its routes, serves them on
loopback through the shared `ThreadedServer`, and wraps every endpoint in what Jira does
before one runs: the fault controls (down, `fail_next`, latency), authentication (Basic
email:token on Cloud; a Bearer PAT or Basic on Server), the body checks, and Jira's error
envelope. Every request, refused ones too, is recorded as a shared `RecordedRequest` with
the credentials redacted.

The endpoints are in `api`, the data in `model`, the JSON shapes in `render`; the package
docstring (`bot.sim.jira`) describes what the sim serves.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim._server import RecordedRequest, ServedSim, ThreadedServer
from bot.sim.jira.api import Call, Handler, JiraApi
from bot.sim.jira.model import JiraError, JiraState, User
from bot.sim.jira.render import API, JiraRenderer

__all__ = ["NOT_AUTHENTICATED", "DownMode", "JiraSim"]

NOT_AUTHENTICATED = "Client must be authenticated to access this resource."

DownMode = Literal["503", "refuse"]


@dataclass(slots=True)
class _Fault:
    status: int
    body: Any
    retry_after: float | None
    path: str | None


class JiraSim(ServedSim):
    """Jira's REST API v2 on a loopback HTTP port. Pass `url` as the client's server."""

    def __init__(
        self,
        *,
        deployment: str = "Cloud",
        email: str = "rollbot@example.com",
        api_token: str = "jira-sim-token",
        search_lag: float = 0.0,
        projects: dict[str, dict[str, Any]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if deployment not in ("Cloud", "Server"):
            raise ValueError(f"deployment must be 'Cloud' or 'Server', not {deployment!r}")
        self.deployment = deployment
        self.email = email
        self.api_token = api_token
        self.validation_errors_as_messages = False
        self.latency = 0.0  # seconds every answer waits (read timeouts)
        self._state = JiraState(cloud=self.cloud, projects=projects, search_lag=search_lag)
        self._lock = self._state.lock
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._down: DownMode | None = None
        self._retry_after: float | None = None
        self._started = False
        self._bot = self._state.add_user(email, "rollbot", None, name=email.split("@")[0])
        self._render = JiraRenderer(self._state)
        self._api = JiraApi(self._state, self._render)
        self._app = self._build_app()
        self._server = ThreadedServer(self._app, host=host, port=port)
        self.host, self.port = host, self._server.port
        self._render.url = self.url

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"

    @property
    def search_lag(self) -> float:
        """Seconds from an issue's creation until search sees it (settable)."""
        return self._state.search_lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        self._state.search_lag = seconds

    # ------------------------------------------------------------------ test controls

    def add_user(
        self,
        email: str,
        display_name: str,
        account_id: str | None = None,
        *,
        name: str | None = None,
        active: bool = True,
        email_visible: bool = True,
    ) -> str:
        """Add a user; returns its identifier (accountId on Cloud, name on Server).

        `account_id` defaults to a stable id made from the email; on Server the user name is
        `name`, else `account_id`, else the email's local part. `email_visible=False` hides
        the email address in answers, as Jira Cloud's profile visibility does.
        """
        user = self._state.add_user(
            email, display_name, account_id, name=name, active=active, email_visible=email_visible
        )
        return user.account_id if self.cloud else user.name

    def set_down(
        self,
        down: bool = True,
        *,
        down_mode: DownMode = "503",
        retry_after: float | None = None,
    ) -> None:
        """Down: "503" answers every request 503 with a Jira body (and `Retry-After` when
        given); "refuse" stops the server (connections refused). Up: serve again, on the
        same port."""
        if down_mode not in ("503", "refuse"):
            raise ValueError(f"down_mode must be '503' or 'refuse', not {down_mode!r}")
        with self._lock:
            was = self._down
            self._down = down_mode if down else None
            self._retry_after = retry_after
        if was == "refuse" and not (down and down_mode == "refuse"):
            self._server = ThreadedServer(self._app, host=self.host, port=self.port)
            self._server.start()
            self._started = True
        elif down and down_mode == "refuse" and was != "refuse":
            self.stop()

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        body: Any = None,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` requests (whose path starts with `path`, when given) with
        `status` and `body` (default: Jira's envelope), before authentication.
        `Retry-After` is sent in whole seconds, rounded up, as HTTP has it (the client's
        `int()` of it would fail on "0.5")."""
        with self._lock:
            self._faults.extend(_Fault(status, body, retry_after, path) for _ in range(n))

    def transition(self, key: str, target: str) -> None:
        """Move an issue as a person would: `target` is a status name ("Done") or the name
        of an available transition ("Reopen Issue")."""
        with self._lock:
            issue = self._state.issue(key)
            for tid, name, to in self._state.transitions_of(issue):
                if target.lower() in (to.lower(), name.lower()):
                    self._state.apply_transition(issue, tid)
                    return
            raise ValueError(f"{issue.key} ({issue.status}) has no transition to {target!r}")

    def hold_creates(self, after: int, *, answered: bool = False) -> None:
        """The create after the first `after` hangs, to kill a process mid-filing. With
        `answered=False` the issue is created only if the caller is still connected when
        `release_creates()` lets it go (a killed caller never reached Jira); with
        `answered=True` it is created at once and only the answer hangs (the create
        happened; the caller never learns its key). Later creates pass."""
        self._api.hold_creates(after, answered=answered)

    def release_creates(self) -> None:
        self._api.release_creates()

    @property
    def held_creates(self) -> int:
        """How many create requests are hanging now."""
        return self._api.held_creates

    # ------------------------------------------------------------------ inspection

    @property
    def created_count(self) -> int:
        with self._lock:
            return len(self._state.issues)

    @property
    def issues(self) -> dict[str, dict[str, Any]]:
        """Every issue as GET /issue/{key} shows it, by key."""
        with self._lock:
            return {k: self._render.issue(i, None) for k, i in self._state.issues.items()}

    def comments(self, key: str) -> list[str]:
        with self._lock:
            return [c.body for c in self._state.issue(key).comments]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ HTTP plumbing

    def _build_app(self) -> Starlette:
        w, api = self._wrap, self._api
        return Starlette(
            routes=[
                Route(f"{API}/serverInfo", w(api.server_info, anonymous=True), methods=["GET"]),
                Route(f"{API}/myself", w(api.myself), methods=["GET"]),
                Route(f"{API}/field", w(api.fields), methods=["GET"]),
                Route(f"{API}/project/{{key}}", w(api.project), methods=["GET"]),
                Route(f"{API}/issue", w(api.create), methods=["POST"]),
                Route(f"{API}/issue/{{key}}", w(api.get_issue), methods=["GET"]),
                Route(f"{API}/issue/{{key}}", w(api.edit_issue), methods=["PUT"]),
                Route(
                    f"{API}/issue/{{key}}/transitions",
                    w(api.transitions),
                    methods=["GET", "POST"],
                ),
                Route(f"{API}/issue/{{key}}/comment", w(api.comment), methods=["GET", "POST"]),
                Route(f"{API}/search/jql", w(api.search_jql), methods=["GET", "POST"]),
                Route(f"{API}/search", w(api.search), methods=["GET", "POST"]),
                Route(f"{API}/user/search", w(api.user_search), methods=["GET"]),
                Route(
                    "/{path:path}",
                    w(api.no_such_resource),
                    methods=["GET", "POST", "PUT", "DELETE"],
                ),
            ]
        )

    def _wrap(self, handler: Handler, *, anonymous: bool = False) -> Callable[..., Any]:
        """Record; then down, forced faults, auth, body parsing, the handler."""

        async def endpoint(request: Request) -> Response:
            at = time.time()
            if self.latency:
                await asyncio.sleep(self.latency)
            raw = await request.body()
            body: Any = None
            bad_json = False
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body, bad_json = raw.decode(errors="replace"), True
            user: User | None = None
            try:
                response = self._down_or_fault(request)
                if response is None:
                    user, denied = self._authenticate(request)
                    if denied or (user is None and not anonymous):
                        raise JiraError(401, messages=[NOT_AUTHENTICATED])
                    if request.method in ("POST", "PUT"):
                        _check_body(request, raw, bad_json)
                    response = await handler(Call(request, body, user))
            except JiraError as e:
                response = self._error_response(e)
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.url.path,
                        query=list(request.query_params.multi_items()),
                        headers=_redacted(request),
                        body=body,
                        raw=raw,
                        at=at,
                        status=response.status_code,
                        user=(user.email if self.cloud else user.name) if user else None,
                        response_headers=dict(response.headers),
                        response=_answer(response),
                    )
                )
            return response

        return endpoint

    def _down_or_fault(self, request: Request) -> Response | None:
        with self._lock:
            if self._down == "503":
                headers = {}
                if self._retry_after is not None:
                    headers["Retry-After"] = str(math.ceil(self._retry_after))
                return JSONResponse(
                    {
                        "errorMessages": [
                            "Jira is unavailable right now (JiraSim is down). Try again later."
                        ],
                        "errors": {},
                    },
                    status_code=503,
                    headers=headers,
                )
            for i, fault in enumerate(self._faults):
                if fault.path is None or request.url.path.startswith(fault.path):
                    del self._faults[i]
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(math.ceil(fault.retry_after))
                    body = fault.body
                    if body is None:
                        body = {"errorMessages": [_reason(fault.status)], "errors": {}}
                    if isinstance(body, str | bytes):
                        return Response(body, status_code=fault.status, headers=headers)
                    return JSONResponse(body, status_code=fault.status, headers=headers)
        return None

    def _authenticate(self, request: Request) -> tuple[User | None, bool]:
        """(the user, whether credentials were given and wrong)."""
        auth = request.headers.get("authorization", "")
        if not auth:
            return None, False
        scheme, _, value = auth.partition(" ")
        bot = self._bot
        if scheme.lower() == "basic":
            try:
                login, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None, True
            logins = {bot.email.lower()} if self.cloud else {bot.email.lower(), bot.name.lower()}
            if login.lower() in logins and _same(secret, self.api_token):
                return bot, False
            return None, True
        if scheme.lower() == "bearer" and not self.cloud and _same(value, self.api_token):
            return bot, False
        return None, True

    def _error_response(self, e: JiraError) -> Response:
        headers: dict[str, str] = {}
        if e.status == 401 and not self.cloud:
            headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        if e.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
        messages, errors = e.messages, e.errors
        if self.validation_errors_as_messages and errors:
            messages, errors = [*messages, *errors.values()], {}
        return JSONResponse(
            {"errorMessages": messages, "errors": errors}, status_code=e.status, headers=headers
        )


# ---------------------------------------------------------------------- helpers


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _redacted(request: Request) -> dict[str, str]:
    out = {}
    for name, value in request.headers.items():
        name = name.lower()
        if name in ("authorization", "proxy-authorization"):
            value = value.partition(" ")[0] + " <redacted>"
        elif name == "cookie":
            value = "<redacted>"
        out[name] = value
    return out


def _check_body(request: Request, raw: bytes, bad_json: bool) -> None:
    content_type = request.headers.get("content-type", "")
    if raw and "json" not in content_type:
        raise JiraError(415, messages=["Unsupported Media Type"])
    if bad_json:
        raise JiraError(400, messages=["Unexpected character in the request body: not JSON."])


def _answer(response: Response) -> Any:
    """What the sim answered, for the record: parsed JSON, else text, else None."""
    raw = bytes(response.body)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
