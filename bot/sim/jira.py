"""A Jira REST API v2 server (the part rollbot and the `jira` client use), for the demo and
the tests.

`JiraSim` answers over real HTTP on loopback, in its own thread and event loop, like the
other sims in `bot.sim`, with Jira's shapes (checked against the Jira Cloud OpenAPI examples
in tests/fixtures/jira/):

    GET  /rest/api/2/serverInfo               anonymous allowed (as in Jira); `deploymentType`
                                              "Cloud" or "Server", `versionNumbers`, `baseUrl`
    GET  /rest/api/2/myself                   the authenticated user
    GET  /rest/api/2/field                    field list with `clauseNames` (the client reads it
                                              before every search to translate field names)
    GET  /rest/api/2/project/{idOrKey}
    POST /rest/api/2/issue                    201 {"id","key","self"} (+ "transition" when the
                                              body asks for one); validation as below
    GET  /rest/api/2/issue/{idOrKey}          `fields=` (comma list, repeated, *all, *navigable,
                                              -name); 404 "Issue does not exist or you do not
                                              have permission to see it."
    PUT  /rest/api/2/issue/{idOrKey}          `fields` and `update` (labels add/remove/set,
                                              comment add) → 204
    GET  /rest/api/2/issue/{idOrKey}/transitions
    POST /rest/api/2/issue/{idOrKey}/transitions   {"transition": {"id": "31" or 31}} → 204
    GET  /rest/api/2/issue/{idOrKey}/comment  {"startAt","maxResults","total","comments"}
    POST /rest/api/2/issue/{idOrKey}/comment  {"body": …} → 201 with the comment
    GET|POST /rest/api/2/search/jql           Cloud only: the enhanced search (`nextPageToken`,
                                              `isLast`); Server answers 404 (no such resource)
    GET|POST /rest/api/2/search               Server only: the classic search (`startAt`,
                                              `maxResults`, `total`); Cloud answers 410 Gone,
                                              as Atlassian has since the API's removal
    GET  /rest/api/2/user/search              Cloud: `query=` (prefix of display name words or
                                              email); `username=` is refused in GDPR strict
                                              mode. Server: `username=` (name, display name,
                                              email). `includeActive`/`includeInactive`,
                                              `startAt`/`maxResults`.

Authentication: Cloud takes Basic `email:api_token`; Server/Data Center takes
``Authorization: Bearer <personal access token>`` (and Basic `name-or-email:api_token`).
Wrong credentials → 401 everywhere; missing ones → 401 except on serverInfo, which Jira
serves anonymously. Errors use Jira's envelope ``{"errorMessages": [...], "errors": {...}}``
(unknown REST paths: ``{"message": "null for uri: …", "status-code": 404}``).

Create and edit validate like Jira: the project (key or id) must exist, else only
``errors.project``; the issue type (name or id) must be one of the project's; a summary is
required (no newlines, < 255 characters); per-project required fields
(``projects={"PAY": {"required": ["priority"]}}`` → ``errors.priority``); the assignee and
reporter must be known users (Cloud: ``{"accountId"}`` or ``{"id"}``; Server: ``{"name"}``);
`duedate` must be YYYY-MM-DD; labels must be strings without spaces; `description` and
`environment` are wiki-markup strings, or an ADF ``{"type": "doc", …}`` document, which is
stored as the plain text of its paragraphs (REST v2 answers strings). Any other field is
refused ("cannot be set. It is not on the appropriate screen, or unknown") unless the project
lists it in ``fields`` (then stored verbatim). All field errors of a request come back
together.

Workflows (per project, ``"workflow"``): "simple" (Jira Cloud's default: To Do / In Progress
/ Done, transitions 11, 21, 31 from any status to any other), "classic" (Jira Server's:
Open, In Progress, Resolved, Closed, Reopened; "Reopen Issue" = 3) and "no-reopen" (simple,
but nothing leaves Done). Entering a done-category status sets `resolution` and
`resolutiondate`; leaving it clears them.

JQL, a small parser: clauses joined by AND, each ``field = value``, ``!=``, ``in (…)``,
``not in (…)``, ``is [not] EMPTY|NULL``, on project, key/issuekey, labels, status,
statusCategory, issuetype/type, assignee, resolution; values quoted ("…", '…') or bare words;
ORDER BY parsed and ignored (results in creation order). Anything else (OR, NOT,
parentheses, functions, ~, <, …) → 400 in Jira's shape, saying it is beyond the sim. Unknown
projects and statuses → 400 as in Jira ("The value 'X' does not exist for the field
'project'."). EVENTUAL CONSISTENCY: an issue shows up in search only `search_lag` seconds
after its creation, as Jira Cloud's index lags (GET by key sees it at once).

Test controls: `add_user`, `set_down(True, down_mode="503"|"refuse", retry_after=None)`,
`fail_next(n, status=…, body=…, retry_after=…, path=…)`, `latency` (seconds every answer
waits), `validation_errors_as_messages`
(answer validation errors in the ``errorMessages``-only shape of the fixture), `transition`
(a human moving an issue), `search_lag` (settable); inspection: `issues`, `created_count`,
`comments(key)`, `requests` (method, path, query, JSON body, headers with the credentials
redacted, the authenticated user, status).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim._server import ThreadedServer

API = "/rest/api/2"
CLOUD_VERSION = ("1001.0.0-SNAPSHOT", [1001, 0, 0], 100_280)
SERVER_VERSION = ("9.12.0", [9, 12, 0], 9_120_000)

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"

# statusCategory key → (id, name, colorName)
CATEGORIES: dict[str, tuple[int, str, str]] = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
# status name → (id, category key)
STATUSES: dict[str, tuple[str, str]] = {
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "Done": ("10001", "done"),
    "Open": ("1", "new"),
    "Reopened": ("4", "new"),
    "Resolved": ("5", "done"),
    "Closed": ("6", "done"),
}
ISSUE_TYPES: dict[str, str] = {
    "Epic": "10000",
    "Task": "10001",
    "Bug": "10002",
    "Story": "10003",
    "Sub-task": "10004",
}
PRIORITIES: dict[str, str] = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}

# Fields the sim knows: id → (name, JQL clause names)
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "issuekey": ("Key", ("id", "issue", "issuekey", "key")),
    "summary": ("Summary", ("summary",)),
    "description": ("Description", ("description",)),
    "environment": ("Environment", ("environment",)),
    "project": ("Project", ("project",)),
    "issuetype": ("Issue Type", ("issuetype", "type")),
    "status": ("Status", ("status",)),
    "statusCategory": ("Status Category", ("statusCategory",)),
    "resolution": ("Resolution", ("resolution",)),
    "resolutiondate": ("Resolved", ("resolutiondate", "resolved")),
    "labels": ("Labels", ("labels",)),
    "duedate": ("Due date", ("due", "duedate")),
    "assignee": ("Assignee", ("assignee",)),
    "reporter": ("Reporter", ("reporter",)),
    "creator": ("Creator", ("creator",)),
    "priority": ("Priority", ("priority",)),
    "created": ("Created", ("created", "createdDate")),
    "updated": ("Updated", ("updated", "updatedDate")),
    "statuscategorychangedate": ("Status Category Changed", ("statusCategoryChangedDate",)),
    "comment": ("Comment", ("comment",)),
}
NOT_NAVIGABLE = {"comment"}  # what *navigable (search's default on Server) leaves out
SETTABLE_ON_CREATE = {
    "project",
    "issuetype",
    "summary",
    "description",
    "environment",
    "labels",
    "duedate",
    "assignee",
    "reporter",
    "priority",
}
SETTABLE_ON_EDIT = SETTABLE_ON_CREATE - {"project"}

SIMPLE_TRANSITIONS = (("11", "To Do"), ("21", "In Progress"), ("31", "Done"))
# classic (Jira Server's default workflow): status → [(transition id, name, target)]
CLASSIC: dict[str, list[tuple[str, str, str]]] = {
    "Open": [("4", "Start Progress", "In Progress"), ("5", "Resolve Issue", "Resolved"),
             ("2", "Close Issue", "Closed")],
    "In Progress": [("301", "Stop Progress", "Open"), ("5", "Resolve Issue", "Resolved"),
                    ("2", "Close Issue", "Closed")],
    "Resolved": [("701", "Close Issue", "Closed"), ("3", "Reopen Issue", "Reopened")],
    "Closed": [("3", "Reopen Issue", "Reopened")],
    "Reopened": [("4", "Start Progress", "In Progress"), ("5", "Resolve Issue", "Resolved"),
                 ("2", "Close Issue", "Closed")],
}  # fmt: skip
WORKFLOWS = ("simple", "classic", "no-reopen")

NOT_AUTHENTICATED = "Client must be authenticated to access this resource."
NO_ISSUE = "Issue does not exist or you do not have permission to see it."
CLOUD_SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)

DownMode = Literal["503", "refuse"]
Handler = Callable[["_Call"], Awaitable[Response]]


class JiraError(Exception):
    """Answer with Jira's error envelope."""

    def __init__(
        self,
        status: int,
        *,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, messages, errors)
        self.status = status
        self.messages = messages or []
        self.errors = errors or {}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the sim received it (refused ones too). No secrets: the
    Authorization header keeps only its scheme ("Basic <redacted>")."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    json: Any  # the parsed body; None without one (raw text when it is not JSON)
    status: int
    user: str | None  # who authenticated (email on Cloud, name on Server)
    at: float

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass(slots=True)
class _Project:
    id: str
    key: str
    name: str
    issue_types: list[str]
    required: list[str]
    extra_fields: list[str]
    workflow: str


@dataclass(slots=True)
class _User:
    account_id: str
    name: str
    email: str
    display_name: str
    active: bool = True
    email_visible: bool = True


@dataclass(slots=True)
class _Comment:
    id: str
    body: str
    author: str  # account id
    created: str


@dataclass(slots=True)
class _Issue:
    id: str
    key: str
    project: str  # key
    issue_type: str  # name
    summary: str
    description: str | None
    environment: str | None
    labels: list[str]
    duedate: str | None
    assignee: str | None  # account id
    reporter: str | None
    creator: str | None
    priority: str  # name
    status: str
    resolutiondate: str | None
    created: str
    updated: str
    status_changed: str
    extra: dict[str, Any]
    searchable_at: float  # time.monotonic() from which search sees it
    comments: list[_Comment] = field(default_factory=list)


@dataclass(slots=True)
class _Fault:
    status: int
    body: Any
    retry_after: float | None
    path: str | None


@dataclass(slots=True)
class _Call:
    request: Request
    body: Any
    user: _User | None


class JiraSim:
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
        self.search_lag = search_lag
        self.validation_errors_as_messages = False
        self.latency = 0.0  # seconds every answer waits (read timeouts)
        self._hold: tuple[int, bool] | None = None
        self._hold_released = threading.Event()
        self._held = 0
        self._create_calls = 0
        self._lock = threading.RLock()
        self._projects: dict[str, _Project] = {}
        for i, (key, config) in enumerate((projects or {"PAY": {}}).items()):
            self._add_project(key, config, default_id=str(10000 + i))
        self._users: dict[str, _User] = {}  # account id → user
        self._issues: dict[str, _Issue] = {}  # key → issue
        self._faults: list[_Fault] = []
        self._requests: list[RecordedRequest] = []
        self._issue_ids = itertools.count(10000)
        self._comment_ids = itertools.count(10000)
        self._numbers: dict[str, itertools.count[int]] = {}
        self._down: DownMode | None = None
        self._retry_after: float | None = None
        self._started = False
        self._bot = self._add_user(email, "rollbot", None, name=email.split("@")[0])
        self._app = self._build_app()
        self._server = ThreadedServer(self._app, host=host, port=port)
        self.host, self.port = host, self._server.port

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"

    def start(self) -> JiraSim:
        self._server.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
        self._started = False

    def __enter__(self) -> JiraSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
        user = self._add_user(
            email, display_name, account_id, name=name, active=active, email_visible=email_visible
        )
        return user.account_id if self.cloud else user.name

    def _add_user(
        self,
        email: str,
        display_name: str,
        account_id: str | None,
        *,
        name: str | None = None,
        active: bool = True,
        email_visible: bool = True,
    ) -> _User:
        digest = hashlib.sha1(email.lower().encode()).hexdigest()[:24]
        user = _User(
            account_id=account_id or digest,
            name=name or account_id or email.split("@")[0],
            email=email,
            display_name=display_name,
            active=active,
            email_visible=email_visible,
        )
        with self._lock:
            self._users[user.account_id] = user
        return user

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
            issue = self._issue(key)
            for tid, name, to in self._transitions_of(issue):
                if target.lower() in (to.lower(), name.lower()):
                    self._apply_transition(issue, tid)
                    return
            raise ValueError(f"{issue.key} ({issue.status}) has no transition to {target!r}")

    # ------------------------------------------------------------------ inspection

    @property
    def created_count(self) -> int:
        with self._lock:
            return len(self._issues)

    @property
    def issues(self) -> dict[str, dict[str, Any]]:
        """Every issue as GET /issue/{key} shows it, by key."""
        with self._lock:
            return {k: self._render_issue(i, None) for k, i in self._issues.items()}

    def comments(self, key: str) -> list[str]:
        with self._lock:
            return [c.body for c in self._issue(key).comments]

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
        w = self._wrap
        return Starlette(
            routes=[
                Route(f"{API}/serverInfo", w(self._server_info, anonymous=True), methods=["GET"]),
                Route(f"{API}/myself", w(self._myself), methods=["GET"]),
                Route(f"{API}/field", w(self._fields), methods=["GET"]),
                Route(f"{API}/project/{{key}}", w(self._project), methods=["GET"]),
                Route(f"{API}/issue", w(self._create), methods=["POST"]),
                Route(f"{API}/issue/{{key}}", w(self._get_issue), methods=["GET"]),
                Route(f"{API}/issue/{{key}}", w(self._edit_issue), methods=["PUT"]),
                Route(
                    f"{API}/issue/{{key}}/transitions",
                    w(self._transitions),
                    methods=["GET", "POST"],
                ),
                Route(f"{API}/issue/{{key}}/comment", w(self._comment), methods=["GET", "POST"]),
                Route(f"{API}/search/jql", w(self._search_jql), methods=["GET", "POST"]),
                Route(f"{API}/search", w(self._search), methods=["GET", "POST"]),
                Route(f"{API}/user/search", w(self._user_search), methods=["GET"]),
                Route(
                    "/{path:path}",
                    w(self._no_such_resource),
                    methods=["GET", "POST", "PUT", "DELETE"],
                ),
            ]
        )

    def _wrap(self, handler: Handler, *, anonymous: bool = False) -> Callable[..., Any]:
        """Record; then down, forced faults, auth, body parsing, the handler."""

        async def endpoint(request: Request) -> Response:
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
            user: _User | None = None
            try:
                response = self._down_or_fault(request)
                if response is None:
                    user, denied = self._authenticate(request)
                    if denied or (user is None and not anonymous):
                        raise JiraError(401, messages=[NOT_AUTHENTICATED])
                    if request.method in ("POST", "PUT"):
                        _check_body(request, raw, bad_json)
                    response = await handler(_Call(request, body, user))
            except JiraError as e:
                response = self._error_response(e)
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.url.path,
                        query=list(request.query_params.multi_items()),
                        headers=_redacted(request),
                        json=body,
                        status=response.status_code,
                        user=(user.email if self.cloud else user.name) if user else None,
                        at=time.time(),
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

    def _authenticate(self, request: Request) -> tuple[_User | None, bool]:
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

    # ------------------------------------------------------------------ endpoints

    async def _server_info(self, call: _Call) -> Response:
        now = _jira_time()
        if self.cloud:
            version, numbers, build = CLOUD_VERSION
            return JSONResponse(
                {
                    "baseUrl": self.url,
                    "buildDate": "2025-01-15T03:04:05.000+0000",
                    "buildNumber": build,
                    "defaultLocale": {"locale": "en_US"},
                    "deploymentType": "Cloud",
                    "displayUrl": self.url,
                    "displayUrlServicedeskHelpCenter": self.url,
                    "scmInfo": "5d1f7e2ab7d6c0a3c2a1a0f5f14d3c2b1a0f9e8d",
                    "serverTime": now,
                    "serverTimeZone": "Etc/UTC",
                    "serverTitle": "Jira",
                    "version": version,
                    "versionNumbers": numbers,
                }
            )
        version, numbers, build = SERVER_VERSION
        return JSONResponse(
            {
                "baseUrl": self.url,
                "version": version,
                "versionNumbers": numbers,
                "deploymentType": "Server",
                "buildNumber": build,
                "buildDate": "2023-11-21T00:00:00.000+0000",
                "databaseBuildNumber": build,
                "serverTime": now,
                "scmInfo": "0b4b6fd7c5a4f5c0bd8c71ad4d0e5f8e6f6d9d1a",
                "serverTitle": "Jira",
            }
        )

    async def _myself(self, call: _Call) -> Response:
        assert call.user is not None
        return JSONResponse(self._render_user(call.user))

    async def _fields(self, call: _Call) -> Response:
        out = [
            {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": fid in SETTABLE_ON_CREATE,
                "navigable": fid not in NOT_NAVIGABLE,
                "searchable": True,
                "clauseNames": list(clauses),
            }
            for fid, (name, clauses) in FIELDS.items()
        ]
        with self._lock:
            custom = sorted({f for p in self._projects.values() for f in p.extra_fields})
        for fid in custom:
            number = fid.removeprefix("customfield_")
            clauses = [f"cf[{number}]"] if fid.startswith("customfield_") else [fid]
            out.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": fid,
                    "custom": fid.startswith("customfield_"),
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": clauses,
                }
            )
        return JSONResponse(out)

    async def _project(self, call: _Call) -> Response:
        with self._lock:
            project = self._find_project(call.request.path_params["key"])
            if project is None:
                raise JiraError(
                    404,
                    messages=[
                        f"No project could be found with key '{call.request.path_params['key']}'."
                    ],
                )
            return JSONResponse(self._render_project(project))

    def hold_creates(self, after: int, *, answered: bool = False) -> None:
        """The create after the first `after` hangs, to kill a process mid-filing. With
        `answered=False` the issue is created only if the caller is still connected when
        `release_creates()` lets it go (a killed caller never reached Jira); with
        `answered=True` it is created at once and only the answer hangs (the create
        happened; the caller never learns its key). Later creates pass."""
        with self._lock:
            self._hold = (self._create_calls + after, answered)
            self._hold_released.clear()

    def release_creates(self) -> None:
        self._hold_released.set()

    @property
    def held_creates(self) -> int:
        """How many create requests are hanging now."""
        with self._lock:
            return self._held

    async def _wait_released(self, request: Request) -> bool:
        """Wait for release_creates(); False when the caller went away meanwhile."""
        with self._lock:
            self._held += 1
        try:
            while not self._hold_released.is_set():
                if await request.is_disconnected():
                    return False
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)  # a disconnect racing the release is still seen
            return not await request.is_disconnected()
        finally:
            with self._lock:
                self._held -= 1

    async def _create(self, call: _Call) -> Response:
        with self._lock:
            self._create_calls += 1
            hold = self._hold is not None and self._create_calls == self._hold[0] + 1
            answered = bool(hold and self._hold and self._hold[1])
        if hold and not answered and not await self._wait_released(call.request):
            return Response(status_code=499)  # nobody is listening; nothing was created
        response = await self._create_now(call)
        if hold and answered:
            await self._wait_released(call.request)
        return response

    async def _create_now(self, call: _Call) -> Response:
        body = call.body if isinstance(call.body, dict) else {}
        fields = body.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        assert call.user is not None
        with self._lock:
            project = self._find_project(_ref(fields.get("project"), "key", "id"))
            if project is None:
                raise JiraError(400, errors={"project": "Specify a valid project ID or key"})
            values, errors = self._validate(project, fields, creating=True)
            update_ops, update_errors = _validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            number = self._numbers.setdefault(project.key, itertools.count(1))
            now = _jira_time()
            issue = _Issue(
                id=str(next(self._issue_ids)),
                key=f"{project.key}-{next(number)}",
                project=project.key,
                issue_type=values["issuetype"],
                summary=values["summary"],
                description=values.get("description"),
                environment=values.get("environment"),
                labels=values.get("labels", []),
                duedate=values.get("duedate"),
                assignee=values.get("assignee"),
                reporter=values.get("reporter", call.user.account_id),
                creator=call.user.account_id,
                priority=values.get("priority", "Medium"),
                status=_initial_status(project.workflow),
                resolutiondate=None,
                created=now,
                updated=now,
                status_changed=now,
                extra=values.get("extra", {}),
                searchable_at=time.monotonic() + self.search_lag,
            )
            self._issues[issue.key] = issue
            self._apply_update(issue, update_ops, call.user)
            answer: dict[str, Any] = {
                "id": issue.id,
                "key": issue.key,
                "self": f"{self.url}{API}/issue/{issue.id}",
            }
            transition = body.get("transition")
            if isinstance(transition, dict):
                tid = str(transition.get("id", ""))
                if any(t[0] == tid for t in self._transitions_of(issue)):
                    self._apply_transition(issue, tid)
                    outcome = {"status": 200, "errorCollection": _no_errors()}
                else:
                    outcome = {
                        "status": 400,
                        "errorCollection": {
                            "errorMessages": [_bad_transition(tid)],
                            "errors": {},
                        },
                    }
                answer["transition"] = outcome
        return JSONResponse(answer, status_code=201)

    async def _get_issue(self, call: _Call) -> Response:
        wanted = _fields_param(call)
        with self._lock:
            issue = self._issue(call.request.path_params["key"])
            return JSONResponse(self._render_issue(issue, wanted))

    async def _edit_issue(self, call: _Call) -> Response:
        body = call.body if isinstance(call.body, dict) else {}
        fields = body.get("fields") or {}
        if not isinstance(fields, dict):
            raise JiraError(400, messages=["Can not deserialize the 'fields' of the request."])
        assert call.user is not None
        with self._lock:
            issue = self._issue(call.request.path_params["key"])
            project = self._projects[issue.project]
            values, errors = self._validate(project, fields, creating=False)
            update_ops, update_errors = _validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            for name in ("summary", "description", "environment", "labels", "duedate"):
                if name in fields:
                    setattr(issue, name, values.get(name))
            for name in ("assignee", "reporter"):
                if name in fields:
                    setattr(issue, name, values.get(name))
            if "priority" in fields:
                issue.priority = values.get("priority", "Medium")
            if "issuetype" in fields:
                issue.issue_type = values["issuetype"]
            issue.extra.update(values.get("extra", {}))
            self._apply_update(issue, update_ops, call.user)
            issue.updated = _jira_time()
        return Response(status_code=204)

    async def _transitions(self, call: _Call) -> Response:
        with self._lock:
            issue = self._issue(call.request.path_params["key"])
            if call.request.method == "GET":
                only = call.request.query_params.get("transitionId")
                return JSONResponse(
                    {
                        "expand": "transitions",
                        "transitions": [
                            self._render_transition(tid, name, to)
                            for tid, name, to in self._transitions_of(issue)
                            if only is None or only == tid
                        ],
                    }
                )
            body = call.body if isinstance(call.body, dict) else {}
            transition = body.get("transition")
            tid = str(transition.get("id", "")) if isinstance(transition, dict) else ""
            if not tid:
                raise JiraError(400, messages=["Missing 'transition' identifier"])
            if not any(t[0] == tid for t in self._transitions_of(issue)):
                raise JiraError(400, messages=[_bad_transition(tid)])
            fields = body.get("fields") or {}
            values, errors = self._validate(self._projects[issue.project], fields, creating=False)
            update_ops, update_errors = _validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            if "duedate" in fields:
                issue.duedate = values.get("duedate")
            assert call.user is not None
            self._apply_update(issue, update_ops, call.user)
            self._apply_transition(issue, tid)
        return Response(status_code=204)

    async def _comment(self, call: _Call) -> Response:
        assert call.user is not None
        with self._lock:
            issue = self._issue(call.request.path_params["key"])
            if call.request.method == "GET":
                q = call.request.query_params
                start = _int(q.get("startAt"), 0, "startAt")
                size = _int(q.get("maxResults"), 5000, "maxResults")
                page = issue.comments[start : start + size]
                return JSONResponse(
                    {
                        "startAt": start,
                        "maxResults": size,
                        "total": len(issue.comments),
                        "comments": [self._render_comment(issue, c) for c in page],
                    }
                )
            body = call.body if isinstance(call.body, dict) else {}
            text = _text(body.get("body"))
            if not text or not text.strip():
                raise JiraError(400, errors={"comment": "Comment body can not be empty!"})
            comment = self._add_comment(issue, text, call.user)
            return JSONResponse(self._render_comment(issue, comment), status_code=201)

    async def _search_jql(self, call: _Call) -> Response:
        """Jira Cloud's enhanced search (GET/POST /rest/api/2/search/jql)."""
        if not self.cloud:
            return await self._no_such_resource(call)
        params = _search_params(call)
        jql = params.get("jql") or ""
        size = _int(params.get("maxResults"), 50, "maxResults")
        if size < 1:
            size = 50
        token = params.get("nextPageToken")
        start = 0
        if token:
            match = re.fullmatch(r"sim-(\d+)", str(token))
            if match is None:
                raise JiraError(400, messages=["The provided next page token is invalid."])
            start = int(match.group(1))
        wanted = _wanted(params.get("fields"), default={"id"})
        with self._lock:
            found = self._run_jql(jql)
            page = found[start : start + size]
            answer: dict[str, Any] = {
                "issues": [self._render_issue(i, wanted, search=True) for i in page],
                "isLast": start + size >= len(found),
            }
            if not answer["isLast"]:
                answer["nextPageToken"] = f"sim-{start + size}"
        return JSONResponse(answer)

    async def _search(self, call: _Call) -> Response:
        """The classic search (Server/Data Center); removed from Jira Cloud."""
        if self.cloud:
            raise JiraError(410, messages=[CLOUD_SEARCH_REMOVED])
        params = _search_params(call)
        jql = params.get("jql") or ""
        start = _int(params.get("startAt"), 0, "startAt")
        size = min(_int(params.get("maxResults"), 50, "maxResults"), 1000)
        wanted = _wanted(params.get("fields"), default={"*navigable"})
        with self._lock:
            found = self._run_jql(jql)
            page = found[start : start + size]
            return JSONResponse(
                {
                    "expand": "schema,names",
                    "startAt": start,
                    "maxResults": size,
                    "total": len(found),
                    "issues": [self._render_issue(i, wanted, search=True) for i in page],
                }
            )

    async def _user_search(self, call: _Call) -> Response:
        q = call.request.query_params
        if self.cloud:
            if q.get("username"):
                raise JiraError(
                    400,
                    messages=[
                        "The query parameter 'username' is not supported in GDPR strict mode."
                    ],
                )
            term = q.get("query") or ""
        else:
            term = q.get("username") or ""
            if not term:
                raise JiraError(400, messages=["The username query parameter was not provided"])
        include_active = _bool(q.get("includeActive"), True)
        include_inactive = _bool(q.get("includeInactive"), False)
        start = _int(q.get("startAt"), 0, "startAt")
        size = _int(q.get("maxResults"), 50, "maxResults")
        term = term.lower()
        with self._lock:
            found = [
                u
                for u in self._users.values()
                if ((u.active and include_active) or (not u.active and include_inactive))
                and _user_matches(u, term, cloud=self.cloud)
            ]
            return JSONResponse([self._render_user(u) for u in found[start : start + size]])

    async def _no_such_resource(self, call: _Call) -> Response:
        return JSONResponse(
            {"message": f"null for uri: {call.request.url}", "status-code": 404},
            status_code=404,
        )

    # ------------------------------------------------------------------ the model

    def _add_project(self, key: str, config: dict[str, Any], *, default_id: str) -> None:
        workflow = str(config.get("workflow", "simple"))
        if workflow not in WORKFLOWS:
            raise ValueError(f"workflow must be one of {WORKFLOWS}, not {workflow!r}")
        issue_types = list(config.get("issuetypes", ["Task", "Bug", "Story", "Epic"]))
        unknown = [t for t in issue_types if t not in ISSUE_TYPES]
        if unknown:
            raise ValueError(f"unknown issue types {unknown}; known: {sorted(ISSUE_TYPES)}")
        self._projects[key] = _Project(
            id=str(config.get("id", default_id)),
            key=key,
            name=str(config.get("name", key)),
            issue_types=issue_types,
            required=list(config.get("required", [])),
            extra_fields=list(config.get("fields", [])),
            workflow=workflow,
        )

    def _find_project(self, ref: Any) -> _Project | None:
        if ref is None:
            return None
        wanted = str(ref)
        for project in self._projects.values():
            if wanted in (project.id, project.key) or wanted.upper() == project.key:
                return project
        return None

    def _issue(self, ref: str) -> _Issue:
        issue = self._issues.get(ref.upper())
        if issue is None:
            issue = next((i for i in self._issues.values() if i.id == ref), None)
        if issue is None:
            raise JiraError(404, messages=[NO_ISSUE])
        return issue

    def _by_name(self, name: str) -> _User | None:
        return next((u for u in self._users.values() if u.name == name), None)

    def _find_user(self, ref: Any) -> _User | None:
        """A user from a field value: Cloud {"accountId"} / {"id"}; Server {"name"}."""
        if not isinstance(ref, dict):
            return None
        if self.cloud:
            account = ref.get("accountId", ref.get("id"))
            return self._users.get(str(account)) if account is not None else None
        name = ref.get("name")
        return self._by_name(str(name)) if name is not None else None

    def _validate(
        self, project: _Project, fields: dict[str, Any], *, creating: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Jira's field checks: (clean values, errors by field), every error at once."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        settable = SETTABLE_ON_CREATE if creating else SETTABLE_ON_EDIT
        for name, value in fields.items():
            if name in project.extra_fields:
                values.setdefault("extra", {})[name] = value
            elif name not in settable:
                errors[name] = (
                    f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                    "or unknown."
                )
            elif name == "issuetype":
                type_ref = _ref(value, "name", "id")
                match = next(
                    (
                        t
                        for t in project.issue_types
                        if type_ref is not None and str(type_ref) in (t, ISSUE_TYPES[t])
                    ),
                    None,
                )
                if match is None:
                    errors[name] = (
                        "Specify an issue type"
                        if type_ref is None
                        else "The issue type selected is invalid."
                    )
                else:
                    values[name] = match
            elif name == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors[name] = "You must specify a summary of the issue."
                elif "\n" in value or "\r" in value:
                    errors[name] = "The summary is invalid because it contains newline characters."
                elif len(value) > 254:
                    errors[name] = "Summary must be less than 255 characters."
                else:
                    values[name] = value
            elif name in ("description", "environment"):
                if value is None:
                    values[name] = None
                elif isinstance(value, str):
                    values[name] = value
                elif _is_adf(value):
                    values[name] = _adf_text(value)
                else:
                    errors[name] = "Operation value must be a string"
            elif name == "labels":
                if value is None:
                    values[name] = []
                elif not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                    errors[name] = "The labels must be a list of strings."
                else:
                    bad = next((x for x in value if not x or " " in x), None)
                    long = next((x for x in value if len(x) > 255), None)
                    if bad is not None:
                        errors[name] = f"The label '{bad}' contains spaces which is invalid."
                    elif long is not None:
                        errors[name] = f"The label '{long}' exceeds the 255 character limit."
                    else:
                        values[name] = list(dict.fromkeys(value))
            elif name == "duedate":
                if value is None or value == "":
                    values[name] = None
                elif not isinstance(value, str) or not _is_date(value):
                    errors[name] = f"Error parsing date string: {value}"
                else:
                    values[name] = value
            elif name in ("assignee", "reporter"):
                if value is None:
                    values[name] = None
                else:
                    user = self._find_user(value)
                    if user is None or not user.active:
                        errors[name] = (
                            "Specified user does not exist or you do not have required permissions"
                            if self.cloud
                            else f"User '{_ref(value, 'name', 'key')}' does not exist."
                        )
                    else:
                        values[name] = user.account_id
            elif name == "priority":
                priority_ref = _ref(value, "name", "id")
                match = next(
                    (p for p, pid in PRIORITIES.items() if str(priority_ref) in (p, pid)), None
                )
                if match is None:
                    errors[name] = "Specify the Priority (id or name) in the string format"
                else:
                    values[name] = match
        if creating:
            if "issuetype" not in fields:
                errors["issuetype"] = "Specify an issue type"
            if "summary" not in fields:
                errors["summary"] = "You must specify a summary of the issue."
        for required in project.required:
            if required in errors:
                continue
            value = fields.get(required)
            present = value not in (None, "", [], {})
            if not present and (creating or required in fields):
                errors[required] = f"Field '{required}' is required"
        return values, errors

    def _apply_update(self, issue: _Issue, ops: list[tuple[str, str, Any]], user: _User) -> None:
        for name, verb, value in ops:
            if name == "labels":
                if verb == "add" and value not in issue.labels:
                    issue.labels.append(value)
                elif verb == "remove" and value in issue.labels:
                    issue.labels.remove(value)
                elif verb == "set":
                    issue.labels = list(dict.fromkeys(value))
            elif name == "comment" and verb == "add":
                self._add_comment(issue, value, user)

    def _add_comment(self, issue: _Issue, text: str, user: _User) -> _Comment:
        comment = _Comment(str(next(self._comment_ids)), text, user.account_id, _jira_time())
        issue.comments.append(comment)
        issue.updated = comment.created
        return comment

    def _transitions_of(self, issue: _Issue) -> list[tuple[str, str, str]]:
        workflow = self._projects[issue.project].workflow
        if workflow == "classic":
            return list(CLASSIC.get(issue.status, []))
        if workflow == "no-reopen" and issue.status == "Done":
            return []
        return [(tid, to, to) for tid, to in SIMPLE_TRANSITIONS if to != issue.status]

    def _apply_transition(self, issue: _Issue, tid: str) -> None:
        target = next(to for t, _, to in self._transitions_of(issue) if t == tid)
        now = _jira_time()
        was_done = STATUSES[issue.status][1] == "done"
        done = STATUSES[target][1] == "done"
        if STATUSES[target][1] != STATUSES[issue.status][1]:
            issue.status_changed = now
        issue.status = target
        if done and not was_done:
            issue.resolutiondate = now
        elif not done:
            issue.resolutiondate = None
        issue.updated = now

    def _run_jql(self, jql: str) -> list[_Issue]:
        clauses = _parse_jql(jql)
        now = time.monotonic()
        candidates = [i for i in self._issues.values() if i.searchable_at <= now]
        for clause in clauses:
            self._check_clause(clause)
        found = [i for i in candidates if all(self._matches(i, c) for c in clauses)]
        return sorted(found, key=lambda i: int(i.id))

    def _check_clause(self, clause: _Clause) -> None:
        """Jira refuses values that name nothing, for fields with a fixed domain."""
        if clause.field == "project":
            for value in clause.values:
                if self._find_project(value) is None and value.lower() not in (
                    p.name.lower() for p in self._projects.values()
                ):
                    raise JiraError(
                        400,
                        messages=[f"The value '{value}' does not exist for the field 'project'."],
                    )
        elif clause.field == "status":
            known = {s.lower() for s in STATUSES} | {sid for sid, _ in STATUSES.values()}
            for value in clause.values:
                if value.lower() not in known:
                    raise JiraError(
                        400,
                        messages=[f"The value '{value}' does not exist for the field 'status'."],
                    )
        elif clause.field == "key" and clause.op in ("=", "in"):
            for value in clause.values:
                if value.upper() not in self._issues and not any(
                    i.id == value for i in self._issues.values()
                ):
                    raise JiraError(
                        400,
                        messages=[f"An issue with key '{value}' does not exist for field 'key'."],
                    )

    def _matches(self, issue: _Issue, clause: _Clause) -> bool:
        actual = self._clause_values(issue, clause.field)
        if clause.op in ("is", "is not"):
            empty = not actual
            return empty if clause.op == "is" else not empty
        wanted = {v.lower() for v in clause.values}
        hit = any(a.lower() in wanted for a in actual)
        if clause.op in ("=", "in"):
            return hit
        return bool(actual) and not hit  # like Jira, != and NOT IN never match an empty field

    def _clause_values(self, issue: _Issue, name: str) -> list[str]:
        if name == "project":
            project = self._projects[issue.project]
            return [project.key, project.id, project.name]
        if name == "key":
            return [issue.key, issue.id]
        if name == "labels":
            return list(issue.labels)
        if name == "status":
            return [issue.status, STATUSES[issue.status][0]]
        if name == "statusCategory":
            category = STATUSES[issue.status][1]
            cid, cname, _ = CATEGORIES[category]
            return [category, cname, str(cid)]
        if name == "issuetype":
            return [issue.issue_type, ISSUE_TYPES[issue.issue_type]]
        if name == "assignee":
            user = self._users.get(issue.assignee) if issue.assignee else None
            return [] if user is None else [user.account_id, user.name, user.email]
        if name == "resolution":
            return ["Done"] if issue.resolutiondate else []
        raise AssertionError(name)

    # ------------------------------------------------------------------ rendering

    def _render_issue(
        self, issue: _Issue, wanted: set[str] | None, *, search: bool = False
    ) -> dict[str, Any]:
        everything = self._render_fields(issue)
        selected = _select(everything, wanted)
        out: dict[str, Any] = {
            "expand": ISSUE_EXPAND,
            "id": issue.id,
            "self": f"{self.url}{API}/issue/{issue.id}",
            "key": issue.key,
        }
        if search and wanted == {"id"}:
            return {"id": issue.id}
        out["fields"] = selected
        return out

    def _render_fields(self, issue: _Issue) -> dict[str, Any]:
        project = self._projects[issue.project]
        category = STATUSES[issue.status][1]
        users = self._users
        return copy.deepcopy(
            {
                "summary": issue.summary,
                "description": issue.description,
                "environment": issue.environment,
                "project": self._render_project(project, short=True),
                "issuetype": self._render_issue_type(issue.issue_type),
                "status": self._render_status(issue.status),
                "statusCategory": self._render_category(category),
                "resolution": (
                    {
                        "self": f"{self.url}{API}/resolution/10000",
                        "id": "10000",
                        "description": "Work has been completed on this issue.",
                        "name": "Done",
                    }
                    if issue.resolutiondate
                    else None
                ),
                "resolutiondate": issue.resolutiondate,
                "labels": list(issue.labels),
                "duedate": issue.duedate,
                "assignee": self._render_user(users[issue.assignee]) if issue.assignee else None,
                "reporter": self._render_user(users[issue.reporter]) if issue.reporter else None,
                "creator": self._render_user(users[issue.creator]) if issue.creator else None,
                "priority": {
                    "self": f"{self.url}{API}/priority/{PRIORITIES[issue.priority]}",
                    "iconUrl": f"{self.url}/images/icons/priorities/{issue.priority.lower()}.svg",
                    "name": issue.priority,
                    "id": PRIORITIES[issue.priority],
                },
                "created": issue.created,
                "updated": issue.updated,
                "statuscategorychangedate": issue.status_changed,
                "comment": {
                    "comments": [self._render_comment(issue, c) for c in issue.comments],
                    "self": f"{self.url}{API}/issue/{issue.id}/comment",
                    "maxResults": len(issue.comments),
                    "total": len(issue.comments),
                    "startAt": 0,
                },
                **issue.extra,
            }
        )

    def _render_user(self, user: _User) -> dict[str, Any]:
        avatars = {
            size: f"https://avatar.example.invalid/{user.account_id}/{size}.png"
            for size in ("48x48", "24x24", "16x16", "32x32")
        }
        if self.cloud:
            out: dict[str, Any] = {
                "self": f"{self.url}{API}/user?accountId={user.account_id}",
                "accountId": user.account_id,
                "accountType": "atlassian",
                "avatarUrls": avatars,
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": "Etc/UTC",
                "locale": "en_US",
            }
            if user.email_visible:
                out["emailAddress"] = user.email
            return out
        return {
            "self": f"{self.url}{API}/user?username={user.name}",
            "key": f"JIRAUSER{10000 + int(hashlib.sha1(user.name.encode()).hexdigest()[:4], 16)}",
            "name": user.name,
            "emailAddress": user.email,
            "avatarUrls": avatars,
            "displayName": user.display_name,
            "active": user.active,
            "deleted": False,
            "timeZone": "Etc/UTC",
            "locale": "en_US",
        }

    def _render_project(self, project: _Project, *, short: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": f"{self.url}{API}/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
        }
        if not short:
            out["issueTypes"] = [self._render_issue_type(t) for t in project.issue_types]
        return out

    def _render_issue_type(self, name: str) -> dict[str, Any]:
        tid = ISSUE_TYPES[name]
        return {
            "self": f"{self.url}{API}/issuetype/{tid}",
            "id": tid,
            "description": f"A {name.lower()}.",
            "iconUrl": f"{self.url}/images/icons/issuetypes/{name.lower()}.svg",
            "name": name,
            "subtask": name == "Sub-task",
        }

    def _render_category(self, key: str) -> dict[str, Any]:
        cid, name, color = CATEGORIES[key]
        return {
            "self": f"{self.url}{API}/statuscategory/{cid}",
            "id": cid,
            "key": key,
            "colorName": color,
            "name": name,
        }

    def _render_status(self, name: str) -> dict[str, Any]:
        sid, category = STATUSES[name]
        return {
            "self": f"{self.url}{API}/status/{sid}",
            "description": "",
            "iconUrl": f"{self.url}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": self._render_category(category),
        }

    def _render_transition(self, tid: str, name: str, to: str) -> dict[str, Any]:
        return {
            "id": tid,
            "name": name,
            "to": self._render_status(to),
            "hasScreen": False,
            "isGlobal": name == to,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    def _render_comment(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        author = self._render_user(self._users[comment.author])
        return {
            "self": f"{self.url}{API}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": comment.body,
            "updateAuthor": author,
            "created": comment.created,
            "updated": comment.created,
            "jsdPublic": True,
        }


# ---------------------------------------------------------------------- JQL


@dataclass(frozen=True, slots=True)
class _Clause:
    field: str  # canonical: project, key, labels, status, statusCategory, issuetype, …
    op: str  # "=", "!=", "in", "not in", "is", "is not"
    values: tuple[str, ...]


JQL_FIELDS = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "issue": "key",
    "labels": "labels",
    "status": "status",
    "statuscategory": "statusCategory",
    "issuetype": "issuetype",
    "type": "issuetype",
    "assignee": "assignee",
    "resolution": "resolution",
}
ORDERABLE = {"key", "created", "updated", "duedate", "priority", "status", "summary", "rank"}
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
RESERVED = set(" +.,;?|*/%^$#@[]!<>=~(){}'\"&")
BEYOND_SIM = (
    "JiraSim understands only AND of clauses 'field = value', '!=', 'in (…)', 'not in (…)', "
    "'is [not] EMPTY' on project, key, labels, status, statusCategory, issuetype, assignee, "
    "resolution"
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word | string | op | lparen | rparen | comma | end
    text: str
    at: int  # 1-based character


def _jql_error(message: str) -> JiraError:
    return JiraError(400, messages=[f"Error in the JQL Query: {message}"])


def _tokenize(jql: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(jql):
        c = jql[i]
        if c.isspace():
            i += 1
        elif c in "\"'":
            j, text = i + 1, []
            while j < len(jql) and jql[j] != c:
                if jql[j] == "\\" and j + 1 < len(jql):
                    j += 1
                text.append(jql[j])
                j += 1
            if j >= len(jql):
                raise _jql_error(
                    f"The quoted string '{jql[i + 1 :]}' has not been completed. "
                    f"(line 1, character {i + 1})"
                )
            tokens.append(_Token("string", "".join(text), i + 1))
            i = j + 1
        elif (
            jql.startswith("!=", i)
            or jql.startswith("!~", i)
            or jql.startswith("<=", i)
            or (jql.startswith(">=", i))
        ):
            tokens.append(_Token("op", jql[i : i + 2], i + 1))
            i += 2
        elif c in "=<>~":
            tokens.append(_Token("op", c, i + 1))
            i += 1
        elif c == "(":
            tokens.append(_Token("lparen", c, i + 1))
            i += 1
        elif c == ")":
            tokens.append(_Token("rparen", c, i + 1))
            i += 1
        elif c == ",":
            tokens.append(_Token("comma", c, i + 1))
            i += 1
        elif c.isalnum() or c == "_":
            j = i
            while j < len(jql) and (jql[j].isalnum() or jql[j] in "_-"):
                j += 1
            if j < len(jql) and jql[j] in RESERVED and jql[j] not in " =!<>~(),'\"":
                raise _jql_error(
                    f"The character '{jql[j]}' is a reserved JQL character. You must enclose "
                    f"it in a string or use the escape '\\u{ord(jql[j]):04x}' instead. "
                    f"(line 1, character {j + 1})"
                )
            tokens.append(_Token("word", jql[i:j], i + 1))
            i = j
        else:
            raise _jql_error(
                f"The character '{c}' is a reserved JQL character. You must enclose it in a "
                f"string or use the escape '\\u{ord(c):04x}' instead. (line 1, character {i + 1})"
            )
    tokens.append(_Token("end", "", len(jql) + 1))
    return tokens


def _parse_jql(jql: str) -> list[_Clause]:
    """AND-joined clauses; ORDER BY checked then dropped."""
    tokens = _tokenize(jql)
    pos = 0

    def peek() -> _Token:
        return tokens[pos]

    def take() -> _Token:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        return token

    def word(token: _Token, *texts: str) -> bool:
        return token.kind == "word" and token.text.lower() in texts

    def value() -> str:
        token = take()
        if token.kind == "lparen" or (token.kind == "word" and peek().kind == "lparen"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {token.at})")
        if token.kind == "string" or (token.kind == "word" and token.text.lower() not in KEYWORDS):
            return token.text
        if token.kind == "word" and token.text.lower() in KEYWORDS:
            raise _jql_error(
                f"Expecting either a value, list or function but got '{token.text}'. You must "
                f"surround '{token.text}' in quotation marks to use it as a value. "
                f"(line 1, character {token.at})"
            )
        got = token.text or "<EOF>"
        raise _jql_error(
            f"Expecting either a value, list or function but got '{got}'. "
            f"(line 1, character {token.at})"
        )

    clauses: list[_Clause] = []
    while peek().kind != "end" and not word(peek(), "order"):
        token = take()
        if token.kind == "lparen" or word(token, "not"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {token.at})")
        if token.kind not in ("word", "string"):
            raise _jql_error(
                f"Expecting a field name but got '{token.text}'. (line 1, character {token.at})"
            )
        name = JQL_FIELDS.get(token.text.lower())
        if name is None:
            raise JiraError(
                400,
                messages=[
                    f"Field '{token.text}' does not exist or you do not have permission to view it."
                ],
            )
        op_token = take()
        values: tuple[str, ...] = ()
        if op_token.kind == "op" and op_token.text in ("=", "!=") and word(peek(), "empty", "null"):
            take()  # `= EMPTY` is `IS EMPTY`
            op = "is" if op_token.text == "=" else "is not"
        elif op_token.kind == "op" and op_token.text in ("=", "!="):
            op, values = op_token.text, (value(),)
        elif word(op_token, "in") or (word(op_token, "not") and word(peek(), "in")):
            if word(op_token, "not"):
                take()
            op = "not in" if word(op_token, "not") else "in"
            if take().kind != "lparen":
                raise _jql_error(f"Expecting '(' after '{op.upper()}'. (line 1)")
            items = [value()]
            while peek().kind == "comma":
                take()
                items.append(value())
            closing = take()
            if closing.kind != "rparen":
                raise _jql_error(
                    f"Expecting ')' but got '{closing.text or '<EOF>'}'. "
                    f"(line 1, character {closing.at})"
                )
            values = tuple(items)
        elif word(op_token, "is"):
            op = "is"
            if word(peek(), "not"):
                take()
                op = "is not"
            empty = take()
            if not word(empty, "empty", "null"):
                raise _jql_error(
                    f"Expecting 'EMPTY' or 'NULL' after '{op.upper()}' but got "
                    f"'{empty.text or '<EOF>'}'. (line 1, character {empty.at})"
                )
        elif op_token.kind == "op":
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {op_token.at})")
        else:
            raise _jql_error(
                f"Expecting operator but got '{op_token.text or '<EOF>'}'. The valid operators "
                "are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and "
                f"'IS NOT'. (line 1, character {op_token.at})"
            )
        clauses.append(_Clause(name, op, values))
        following = peek()
        if word(following, "and"):
            take()
            if peek().kind == "end":
                raise _jql_error(
                    f"Expecting a field name but got '<EOF>'. (line 1, character {peek().at})"
                )
        elif word(following, "or"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {following.at})")
        elif following.kind != "end" and not word(following, "order"):
            raise _jql_error(
                f"Expecting either 'OR' or 'AND' but got '{following.text}'. "
                f"(line 1, character {following.at})"
            )
    if word(peek(), "order"):
        take()
        if not word(take(), "by"):
            raise _jql_error("Expecting 'BY' after 'ORDER'. (line 1)")
        while True:
            token = take()
            if token.kind not in ("word", "string"):
                raise _jql_error(
                    f"Expecting a field name but got '{token.text or '<EOF>'}'. "
                    f"(line 1, character {token.at})"
                )
            if token.text.lower() not in ORDERABLE and token.text.lower() not in JQL_FIELDS:
                raise JiraError(
                    400,
                    messages=[
                        f"Field '{token.text}' does not exist or you do not have permission "
                        "to view it."
                    ],
                )
            if word(peek(), "asc", "desc"):
                take()
            if peek().kind != "comma":
                break
            take()
        if peek().kind != "end":
            raise _jql_error(
                f"Expecting ',' but got '{peek().text}'. (line 1, character {peek().at})"
            )
    return clauses


# ---------------------------------------------------------------------- helpers


def _jira_time(moment: datetime | None = None) -> str:
    """Jira's timestamp format: 2019-05-11T10:14:57.123+0000."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _no_errors() -> dict[str, Any]:
    return {"errorMessages": [], "errors": {}}


def _bad_transition(tid: str) -> str:
    return f"Transition id '{tid}' is not valid for this issue."


def _initial_status(workflow: str) -> str:
    return "Open" if workflow == "classic" else "To Do"


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


def _ref(value: Any, *keys: str) -> Any:
    """`{"key": "PAY"}` / `{"id": "10000"}` → the first present key's value; a bare string
    or number stands for itself."""
    if isinstance(value, dict):
        for key in keys:
            if value.get(key) is not None:
                return value[key]
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    return None


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_adf(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and isinstance(value.get("content"), list)
    )


def _adf_text(node: Any) -> str:
    """The plain text of an ADF document: its block nodes' text, one per paragraph."""
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    parts = [_adf_text(child) for child in node.get("content", []) or []]
    if node.get("type") == "doc":
        return "\n\n".join(p for p in parts if p)
    return "".join(parts)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if _is_adf(value):
        return _adf_text(value)
    return None


def _validate_update(update: Any) -> tuple[list[tuple[str, str, Any]], dict[str, str]]:
    """`"update": {"labels": [{"add": "x"}], "comment": [{"add": {"body": "…"}}]}`."""
    ops: list[tuple[str, str, Any]] = []
    errors: dict[str, str] = {}
    if not update:
        return ops, errors
    if not isinstance(update, dict):
        return ops, {"update": "Can not deserialize the 'update' of the request."}
    for name, operations in update.items():
        if name not in ("labels", "comment") or not isinstance(operations, list):
            errors[name] = (
                f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            )
            continue
        for operation in operations:
            if not isinstance(operation, dict) or len(operation) != 1:
                errors[name] = f"Invalid update operation for field '{name}'."
                continue
            verb, value = next(iter(operation.items()))
            if name == "labels" and verb in ("add", "remove") and isinstance(value, str):
                if " " in value:
                    errors[name] = f"The label '{value}' contains spaces which is invalid."
                ops.append((name, verb, value))
            elif name == "labels" and verb == "set" and isinstance(value, list):
                ops.append((name, verb, [str(v) for v in value]))
            elif name == "comment" and verb == "add" and isinstance(value, dict):
                text = _text(value.get("body"))
                if not text:
                    errors["comment"] = "Comment body can not be empty!"
                else:
                    ops.append((name, verb, text))
            else:
                errors[name] = f"Operation '{verb}' is not supported for field '{name}'."
    return ops, errors


def _fields_param(call: _Call) -> set[str] | None:
    values = call.request.query_params.getlist("fields")
    return _wanted(values, default=None) if values else None


def _wanted(raw: Any, *, default: set[str] | None) -> set[str] | None:
    """`fields` as a comma list, repeated parameters or a JSON list → a set of names."""
    if raw is None or raw == [] or raw == "":
        return default
    items = raw if isinstance(raw, list) else [raw]
    names = {part.strip() for item in items for part in str(item).split(",") if part.strip()}
    return names or default


def _select(fields: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    if wanted is None or "*all" in wanted:
        chosen = set(fields)
    elif "*navigable" in wanted:
        chosen = {f for f in fields if f not in NOT_NAVIGABLE}
    else:
        chosen = {f for f in wanted if not f.startswith("-")}
    chosen -= {f[1:] for f in (wanted or set()) if f.startswith("-")}
    return {k: v for k, v in fields.items() if k in chosen}


def _search_params(call: _Call) -> dict[str, Any]:
    """GET query parameters or the POST body, as one mapping (`fields` as a list)."""
    if call.request.method == "POST":
        body = call.body if isinstance(call.body, dict) else {}
        return {k: v for k, v in body.items() if v is not None}
    q = call.request.query_params
    params: dict[str, Any] = {k: q.get(k) for k in q}
    params["fields"] = q.getlist("fields") or None
    return params


def _int(raw: Any, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise JiraError(
            400, messages=[f"The value '{raw}' is invalid for the parameter '{name}'."]
        ) from None


def _bool(raw: str | None, default: bool) -> bool:
    return default if raw is None else raw.lower() == "true"


def _user_matches(user: _User, term: str, *, cloud: bool) -> bool:
    if not term:
        return False
    words = [w.lower() for w in user.display_name.split()]
    candidates = [user.display_name.lower(), *words, user.email.lower()]
    if not cloud:
        candidates.append(user.name.lower())
    return any(c.startswith(term) for c in candidates)
