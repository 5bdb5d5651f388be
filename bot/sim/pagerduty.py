"""A PagerDuty REST API v2 server, for the demo and the tests.

`PagerDutySim` answers what rollbot asks PagerDuty, over real HTTPS on loopback (the
`pagerduty` client refuses any base URL that is not ``https://``; trust `ca_file`), with
PagerDuty's shapes:

    GET /oncalls        escalation_policy_ids[], user_ids[], schedule_ids[], include[]
                        (users, escalation_policies, schedules), earliest, since, until,
                        classic pagination (limit ≤ 100, default 25; offset; more; total)
    GET /users          query= (name or email contains), classic pagination
    GET /users/{id}     {"user": {…}}, 404 when unknown

Every REST request must carry ``Authorization: Token token=<token>``; otherwise 401 with
PagerDuty's error body ``{"error": {"message": "Authentication failed", "code": 2006}}``.
Errors always use that envelope (2001 invalid input, 2010 access denied, 2020 rate limit,
2100 not found).

Test controls: `add_user`, `set_oncall`, `ignore_include`, `force_status` (the next *n*
requests answer a status, e.g. 429 with ``Retry-After``), `set_down` (connection refused
until brought back on the same port), `reset`, and `requests` (everything received,
refused requests included).

Routes are grouped by API (`_rest_routes`; incidents, notes and the Events API v2 belong
next to them as further groups of the same app).
"""

from __future__ import annotations

import asyncio
import hmac
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim import tls

SUBDOMAIN = "payments"
API_HOST = "https://api.pagerduty.com"  # what `self` links point at, as in real answers
WEB_HOST = f"https://{SUBDOMAIN}.pagerduty.com"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100

# PagerDuty's error codes (https://developer.pagerduty.com/docs/rest-api-v2/errors/)
ERRORS: dict[int, tuple[str, int]] = {
    400: ("Invalid Input Provided", 2001),
    401: ("Authentication failed", 2006),
    403: ("Access Denied", 2010),
    404: ("Not Found", 2100),
    429: ("Rate Limit Exceeded", 2020),
    500: ("Internal Server Error", 2000),
    502: ("Bad Gateway", 2000),
    503: ("Service Unavailable", 2000),
}

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the sim received it (refused ones too)."""

    method: str
    path: str
    query: list[tuple[str, str]]  # in order, repeated keys kept (`include[]=users`)
    headers: dict[str, str]  # lower-cased names
    status: int
    at: float  # time.time()
    body: bytes = b""

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass(slots=True)
class _OnCall:
    escalation_policy_id: str
    user_id: str
    level: int
    schedule_id: str | None
    start: datetime | None  # None: permanent (direct user target)
    end: datetime | None


@dataclass(slots=True)
class _Forced:
    status: int
    retry_after: float | None
    path: str | None  # only requests whose path starts with this; None: any


@dataclass(slots=True)
class _State:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)  # id -> name
    schedules: dict[str, str] = field(default_factory=dict)
    oncalls: list[_OnCall] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced: list[_Forced] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)


class _PdError(Exception):
    def __init__(self, status: int, *, errors: list[str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors or []


class PagerDutySim:
    """PagerDuty's REST API v2 on a loopback HTTPS port, in its own thread and event loop.

    Pass `url` as the client's base URL and `ca_file` as the CA to trust.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "u+sim-pagerduty-token",
        tls_enabled: bool = True,
    ) -> None:
        self.host, self._port = host, port
        self.token = token
        self.tls_enabled = tls_enabled
        self._tls = tls.write_files() if tls_enabled else None
        self._lock = threading.RLock()
        self._state = _State()
        self._down = False
        self.ignore_include = False  # answer bare references whatever include[] asks
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The REST API base URL (``https://127.0.0.1:<port>``), like https://api.pagerduty.com."""
        if not self._port:
            raise RuntimeError("PagerDutySim is not started")
        scheme = "https" if self.tls_enabled else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def ca_file(self) -> str | None:
        """The CA certificate clients must trust (None without TLS)."""
        return self._tls.ca_file if self._tls else None

    def start(self) -> PagerDutySim:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(128)
        self._socket = sock
        self._port = sock.getsockname()[1]
        kwargs: dict[str, Any] = {}
        if self._tls is not None:
            kwargs = {"ssl_certfile": self._tls.cert_file, "ssl_keyfile": self._tls.key_file}
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", **kwargs
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="pagerduty-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("PagerDutySim did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for idle keep-alive connections
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._socket is not None:
            self._socket.close()
        self._thread = self._server = self._socket = None

    def __enter__(self) -> PagerDutySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_down(self, down: bool = True) -> None:
        """Down: the port refuses connections. Up again: served on the same port."""
        with self._lock:
            if down == self._down:
                return
            self._down = down
        if down:
            self.stop()
        else:
            self.start()

    # ------------------------------------------------------------------ seed data

    def add_service(
        self, id: str, name: str, *, description: str = "", escalation_policy_id: str = ""
    ) -> None:
        """A service, shaped like REST v2 ``GET /services/{id}``'s ``service``."""
        with self._lock:
            self._state.services[id] = {
                "id": id,
                "type": "service",
                "summary": name,
                "self": f"{API_HOST}/services/{id}",
                "html_url": f"{WEB_HOST}/services/{id}",
                "name": name,
                "description": description,
                "status": "active",
                "alert_creation": "create_alerts_and_incidents",
                "escalation_policy": _reference(
                    "escalation_policy",
                    escalation_policy_id,
                    self._state.policies.get(escalation_policy_id, ""),
                ),
                "teams": [],
            }

    def add_user(
        self,
        id: str,
        name: str,
        email: str,
        *,
        time_zone: str = "Etc/UTC",
        role: str = "user",
        job_title: str = "",
    ) -> None:
        with self._lock:
            self._state.users[id] = {
                "id": id,
                "type": "user",
                "summary": name,
                "self": f"{API_HOST}/users/{id}",
                "html_url": f"{WEB_HOST}/users/{id}",
                "name": name,
                "email": email,
                "time_zone": time_zone,
                "color": "green",
                "role": role,
                "avatar_url": f"https://secure.gravatar.com/avatar/{id.lower()}.png?d=mm&r=PG",
                "description": "",
                "invitation_sent": False,
                "job_title": job_title,
                "teams": [],
                "contact_methods": [
                    {
                        "id": f"PC{id[1:]}",
                        "type": "email_contact_method_reference",
                        "summary": "Default",
                        "self": f"{API_HOST}/users/{id}/contact_methods/PC{id[1:]}",
                        "html_url": None,
                    }
                ],
                "notification_rules": [],
                "coordinated_incidents": [],
            }

    def add_escalation_policy(self, id: str, name: str) -> None:
        with self._lock:
            self._state.policies[id] = name

    def set_oncall(
        self,
        escalation_policy_id: str,
        user_ids: list[str] | tuple[str, ...],
        level: int = 1,
        *,
        schedule_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Put `user_ids` on call for the policy's `level`, replacing who was on it.

        `start`/`end` None mean a permanent on-call (a user target of the escalation rule);
        with `schedule_id`, the entries come from that schedule.
        """
        with self._lock:
            unknown = [u for u in user_ids if u not in self._state.users]
            if unknown:
                raise KeyError(f"unknown PagerDuty users {unknown}: add_user them first")
            self._state.policies.setdefault(escalation_policy_id, f"{escalation_policy_id} policy")
            if schedule_id is not None:
                self._state.schedules.setdefault(schedule_id, f"{schedule_id} rotation")
            self._state.oncalls = [
                o
                for o in self._state.oncalls
                if not (o.escalation_policy_id == escalation_policy_id and o.level == level)
            ]
            self._state.oncalls.extend(
                _OnCall(escalation_policy_id, u, level, schedule_id, start, end) for u in user_ids
            )

    def force_status(
        self,
        n: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` REST requests (whose path starts with `path`, when given)
        with `status` and PagerDuty's error body, plus ``Retry-After`` when given."""
        with self._lock:
            self._state.forced.extend(_Forced(status, retry_after, path) for _ in range(n))

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear_requests(self) -> None:
        with self._lock:
            self._state.requests.clear()

    def reset(self) -> None:
        """Forget users, policies, on-calls, forced statuses and requests; bring it up."""
        self.set_down(False)
        with self._lock:
            self._state = _State()
            self.ignore_include = False

    # ------------------------------------------------------------------ HTTP

    def _app(self) -> Starlette:
        return Starlette(routes=self._rest_routes())

    def _rest_routes(self) -> list[Route]:
        """REST API v2 (api.pagerduty.com): token auth, PagerDuty's error envelope."""
        return [
            Route("/oncalls", self._rest(self._list_oncalls), methods=["GET"]),
            Route("/users", self._rest(self._list_users), methods=["GET"]),
            Route("/users/{id}", self._rest(self._get_user), methods=["GET"]),
            Route("/services/{id}", self._rest(self._get_service), methods=["GET"]),
            Route(
                "/{path:path}",
                self._rest(self._not_found),
                methods=["GET", "POST", "PUT", "DELETE"],
            ),
        ]

    def _rest(self, handler: Handler) -> Handler:
        """Record, then forced statuses, then auth, then the handler; errors as PagerDuty."""

        async def endpoint(request: Request) -> Response:
            body = await request.body()
            try:
                response = self._forced_response(request) or self._auth_error(request)
                if response is None:
                    response = await handler(request)
            except _PdError as e:
                response = _error(e.status, errors=e.errors)
            with self._lock:
                self._state.requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.url.path,
                        query=list(request.query_params.multi_items()),
                        headers={k.lower(): v for k, v in request.headers.items()},
                        status=response.status_code,
                        at=time.time(),
                        body=body,
                    )
                )
            return response

        return endpoint

    def _forced_response(self, request: Request) -> Response | None:
        with self._lock:
            for i, forced in enumerate(self._state.forced):
                if forced.path is None or request.url.path.startswith(forced.path):
                    del self._state.forced[i]
                    headers = {}
                    if forced.retry_after is not None:
                        headers["Retry-After"] = f"{forced.retry_after:g}"
                    return _error(forced.status, headers=headers)
        return None

    def _auth_error(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        prefix = "Token token="
        given = auth[len(prefix) :] if auth.startswith(prefix) else ""
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return _error(401)

    async def _not_found(self, request: Request) -> Response:
        raise _PdError(404)

    async def _list_oncalls(self, request: Request) -> Response:
        q = request.query_params
        policies = set(q.getlist("escalation_policy_ids[]"))
        users = set(q.getlist("user_ids[]"))
        schedules = set(q.getlist("schedule_ids[]"))
        include = set() if self.ignore_include else set(q.getlist("include[]"))
        now = datetime.now(UTC)
        since = _time_param(q.get("since"), "since") or now
        until = _time_param(q.get("until"), "until") or now
        if until < since:
            raise _PdError(400, errors=["Until cannot be before since"])
        earliest = _bool_param(q.get("earliest"))
        with self._lock:
            entries = [
                o
                for o in self._state.oncalls
                if (not policies or o.escalation_policy_id in policies)
                and (not users or o.user_id in users)
                and (not schedules or o.schedule_id in schedules)
                and (o.start is None or o.start <= until)
                and (o.end is None or o.end >= since)
            ]
            if earliest:
                first: dict[tuple[str, int, str], _OnCall] = {}
                for o in entries:
                    key = (o.escalation_policy_id, o.level, o.user_id)
                    best = first.get(key)
                    if best is None or _start_key(o) < _start_key(best):
                        first[key] = o
                entries = list(first.values())
            entries.sort(key=lambda o: (o.escalation_policy_id, o.level))
            rendered = [self._render_oncall(o, include) for o in entries]
        return _page(request, "oncalls", rendered)

    def _render_oncall(self, o: _OnCall, include: set[str]) -> dict[str, Any]:
        user = self._state.users[o.user_id]
        policy = _reference(
            "escalation_policy",
            o.escalation_policy_id,
            self._state.policies.get(o.escalation_policy_id, o.escalation_policy_id),
        )
        if "escalation_policies" in include:
            policy = {**policy, "type": "escalation_policy", "name": policy["summary"]}
        schedule = None
        if o.schedule_id is not None:
            schedule = _reference("schedule", o.schedule_id, self._state.schedules[o.schedule_id])
            if "schedules" in include:
                schedule = {**schedule, "type": "schedule", "name": schedule["summary"]}
        return {
            "escalation_policy": policy,
            "escalation_level": o.level,
            "schedule": schedule,
            "user": _copy(user) if "users" in include else _user_reference(user),
            "start": _iso(o.start),
            "end": _iso(o.end),
        }

    async def _list_users(self, request: Request) -> Response:
        query = (request.query_params.get("query") or "").lower()
        with self._lock:
            found = [
                _copy(u)
                for u in self._state.users.values()
                if not query or query in u["name"].lower() or query in u["email"].lower()
            ]
        return _page(request, "users", found)

    async def _get_service(self, request: Request) -> Response:
        with self._lock:
            service = self._state.services.get(request.path_params["id"])
            if service is None:
                raise _PdError(404)
            return JSONResponse({"service": _copy(service)})

    async def _get_user(self, request: Request) -> Response:
        with self._lock:
            user = self._state.users.get(request.path_params["id"])
            if user is None:
                raise _PdError(404)
            return JSONResponse({"user": _copy(user)})


# ---------------------------------------------------------------------- shapes


def _error(
    status: int, *, errors: list[str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    message, code = ERRORS.get(status, ("Error", 2000))
    error: dict[str, Any] = {"message": message, "code": code}
    if errors:
        error["errors"] = errors
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _page(request: Request, wrapper: str, items: list[dict[str, Any]]) -> Response:
    """Classic pagination as PagerDuty does it: limit (≤ 100), offset, more, total."""
    q = request.query_params
    limit = min(_int_param(q.get("limit"), DEFAULT_LIMIT, "limit"), MAX_LIMIT)
    offset = _int_param(q.get("offset"), 0, "offset")
    if limit < 1 or offset < 0:
        raise _PdError(400, errors=["Limit must be positive and offset not negative"])
    page = items[offset : offset + limit]
    return JSONResponse(
        {
            wrapper: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(items),
            "total": len(items) if _bool_param(q.get("total")) else None,
        }
    )


def _reference(kind: str, id: str, summary: str) -> dict[str, Any]:
    plural = {"escalation_policy": "escalation_policies", "schedule": "schedules"}[kind]
    return {
        "id": id,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"{API_HOST}/{plural}/{id}",
        "html_url": f"{WEB_HOST}/{plural}/{id}",
    }


def _user_reference(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "type": "user_reference",
        "summary": user["summary"],
        "self": user["self"],
        "html_url": user["html_url"],
    }


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in value.items()}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _start_key(o: _OnCall) -> datetime:
    return o.start or datetime.min.replace(tzinfo=UTC)


def _time_param(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise _PdError(400, errors=[f"{name.capitalize()} is not a valid date"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _PdError(400, errors=[f"{name.capitalize()} must be an integer"]) from None


def _bool_param(raw: str | None) -> bool:
    return (raw or "").lower() == "true"
