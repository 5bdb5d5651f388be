"""`GitLabSim`: the GitLab sim's HTTP server. It owns the ASGI app, serves it on loopback
through the shared `ThreadedServer`, and wraps every endpoint in what GitLab does before
one runs: the fault switches, authentication, the parameters (query string and body
merged, as Grape reads them). Every request, refused ones too, is recorded as a shared
`RecordedRequest` without the token.

Routing reads the raw path: a project named by its URL-encoded path
(`/projects/platform%2Fconfigs/…`) is one segment, as in GitLab, and would be split in two
once decoded. The rules are in `model`, the JSON shapes in `render`; the package
docstring (`bot.sim.gitlab`) says what the sim serves.
"""

from __future__ import annotations

import hmac
import json
import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim._server import RecordedRequest, ServedSim, ThreadedServer
from bot.sim.git import BareRepo
from bot.sim.gitlab.model import GitLabError, GitLabState, MergeRequest, Project, User
from bot.sim.gitlab.render import GitLabRenderer

__all__ = ["DEFAULT_TOKEN", "GitLabSim"]

DEFAULT_TOKEN = "glpat-rollbot-sim-000000000"
API = "/api/v4"
UNAUTHORIZED = {"message": "401 Unauthorized"}
MAX_PER_PAGE = 100


@dataclass(slots=True)
class _Lost:
    method: str | None
    path_contains: str


class GitLabSim(ServedSim):
    """GitLab's REST API v4 (projects, merge requests, notes) on a loopback port.

    `projects` maps each project's path ("group/name") to its bare repository; numeric
    ids are given in that order from 1. `token` is the one accepted personal access
    token. Pass `url` as python-gitlab's `url`.
    """

    def __init__(
        self,
        *,
        projects: dict[str, BareRepo],
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "rollbot",
    ) -> None:
        self.token = token
        self._state = GitLabState(projects, bot=User(1, username, "rollbot"))
        self._lock = self._state.lock
        self._faults: list[int] = []
        self._lost: list[_Lost] = []
        self._requests: list[RecordedRequest] = []
        self._server = ThreadedServer(
            Starlette(routes=[Route("/{path:path}", self._endpoint, methods=_METHODS)]),
            host=host,
            port=port,
            name="gitlab-sim",
        )
        self._render = GitLabRenderer(self._state, self.url)
        self._started = False

    # ── test hooks: what people do on GitLab's pages ──

    def require_approvals(self, project: str, n: int) -> None:
        """The project's approval rule: `n` approvals before a merge request may merge."""
        with self._lock:
            self._state.project(project).approvals_required = n

    def require_pipeline(self, project: str, required: bool = True) -> None:
        """The project setting "Pipelines must succeed"
        (`only_allow_merge_if_pipeline_succeeds`)."""
        with self._lock:
            self._state.project(project).pipelines_must_succeed = required
            self._state.advance_auto_merges(self._state.project(project))

    def approve(self, project: str, iid: int, user: str) -> None:
        """`user` approves merge request `!iid`; an auto-merge waiting for it may merge."""
        with self._lock:
            p = self._state.project(project)
            p.mr(iid).approvals[user] = self._state.user(user)
            self._state.advance_auto_merges(p)

    def set_pipeline(self, project: str, sha: str, status: str) -> int:
        """The pipeline of commit `sha` is now `status` (created, pending, running, success,
        failed, canceled, skipped, manual); its id. An auto-merge waiting for it merges
        once it succeeds."""
        with self._lock:
            p = self._state.project(project)
            number = self._state.set_pipeline(p, sha, status)
            self._state.advance_auto_merges(p)
            return number

    def close(self, project: str, iid: int) -> None:
        """Someone closes merge request `!iid` on its page."""
        with self._lock:
            mr = self._state.project(project).mr(iid)
            mr.final_sha = mr.sha
            mr.state = "closed"
            mr.closed_at = mr.updated_at = time.time()
            mr.auto_merge = None

    # ── fault switches ──

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next `n` requests `status` before doing anything (GitLab down, a
        proxy failing)."""
        with self._lock:
            self._faults.extend([status] * n)

    def lose_next(self, n: int = 1, *, method: str | None = None, path_contains: str = "") -> None:
        """The next `n` matching requests are carried out (the merge request opened, the
        merge made) but answered 502, as when a proxy loses GitLab's answer."""
        with self._lock:
            self._lost.extend(_Lost(method, path_contains) for _ in range(n))

    # ── inspection ──

    def merge_request(self, project: str, iid: int) -> dict[str, Any]:
        """The merge request as GET /merge_requests/:iid shows it."""
        with self._lock:
            return self._render.merge_request(self._state.project(project).mr(iid))

    def merge_requests(self, project: str) -> list[dict[str, Any]]:
        with self._lock:
            p = self._state.project(project)
            return [self._render.merge_request(mr) for mr in p.merge_requests]

    def notes(self, project: str, iid: int) -> list[str]:
        """The bodies of the merge request's notes (system notes too), oldest first."""
        with self._lock:
            return [n.body for n in self._state.project(project).mr(iid).notes]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        """Recorded requests of `method` whose decoded path ends with `path_suffix`."""
        return [
            r
            for r in self.requests
            if r.method == method and urllib.parse.unquote(r.path).endswith(path_suffix)
        ]

    # ── HTTP plumbing ──

    async def _endpoint(self, request: Request) -> Response:
        at = time.time()
        raw = await request.body()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        with self._lock:
            forced = self._faults.pop(0) if self._faults else None
        user: User | None = None
        if forced is not None:
            response: Response = JSONResponse(
                {"message": f"{forced} {_reason(forced)}"}, status_code=forced
            )
        elif not self._authenticated(request):
            response = JSONResponse(UNAUTHORIZED, status_code=401)
        else:
            user = self._state.bot
            with self._lock:
                lost = self._take_lost(request.method, urllib.parse.unquote(path))
            try:
                params = _params(request, raw, body)
                with self._lock:
                    response = self._route(request.method, path, params, user)
            except GitLabError as e:
                response = JSONResponse(e.body, status_code=e.status)
            if lost:
                response = Response(
                    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    status_code=502,
                    media_type="text/html",
                )
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=path,
                    query=list(request.query_params.multi_items()),
                    headers=_redacted(request),
                    body=body,
                    raw=raw,
                    at=at,
                    status=response.status_code,
                    user=user.username if user else None,
                    response_headers=dict(response.headers),
                    response=_answer(response),
                )
            )
        return response

    def _take_lost(self, method: str, path: str) -> bool:
        for i, rule in enumerate(self._lost):
            if (rule.method is None or rule.method == method) and rule.path_contains in path:
                del self._lost[i]
                return True
        return False

    def _authenticated(self, request: Request) -> bool:
        """`PRIVATE-TOKEN: <token>` (python-gitlab's private_token) or
        `Authorization: Bearer <token>` (OAuth, and personal tokens too)."""
        given = request.headers.get("private-token")
        if given is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def _route(self, method: str, path: str, params: dict[str, Any], user: User) -> Response:
        if not path.startswith(API + "/"):
            raise GitLabError(404, {"error": "404 Not Found"})
        parts = [urllib.parse.unquote(p) for p in path[len(API) + 1 :].split("/")]
        handler = _ROUTES.get((method, len(parts), parts[0], *parts[2:3], *parts[4:5]))
        if handler is None or parts[0] != "projects":
            raise GitLabError(404, {"error": "404 Not Found"})
        project = self._state.project(parts[1])
        return handler(self, project, parts, params, user)

    # ── endpoints (under the lock) ──

    def _get_project(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        return JSONResponse(self._render.project(project))

    def _list_mrs(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        found = self._state.list_mrs(project, params)
        page = max(1, _int(params.get("page"), 1))
        per_page = min(MAX_PER_PAGE, max(1, _int(params.get("per_page"), 20)))
        pages = max(1, math.ceil(len(found) / per_page))
        items = found[(page - 1) * per_page : page * per_page]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(found)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        return JSONResponse(
            [self._render.merge_request(mr, single=False) for mr in items], headers=headers
        )

    def _create_mr(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        mr = self._state.create_mr(project, params)
        return JSONResponse(self._render.merge_request(mr), status_code=201)

    def _get_mr(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        return JSONResponse(self._render.merge_request(self._mr(project, parts)))

    def _merge_mr(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        mr = self._mr(project, parts)
        self._state.merge(mr, params, user=user)
        return JSONResponse(self._render.merge_request(mr))

    def _add_note(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        mr = self._mr(project, parts)
        note = self._state.add_note(mr, params.get("body"), author=user)
        return JSONResponse(self._render.note(mr, note), status_code=201)

    def _list_notes(
        self, project: Project, parts: list[str], params: dict[str, Any], user: User
    ) -> Response:
        mr = self._mr(project, parts)
        notes = sorted(mr.notes, key=lambda n: n.id, reverse=params.get("sort") != "asc")
        return JSONResponse([self._render.note(mr, n) for n in notes])

    def _mr(self, project: Project, parts: list[str]) -> MergeRequest:
        if not parts[3].isdigit():
            raise GitLabError(404, {"error": "404 Not Found"})
        return project.mr(int(parts[3]))


_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
_Handler = Callable[[GitLabSim, Project, list[str], dict[str, Any], User], Response]
#: (method, number of path segments after /api/v4, "projects", [resource], [action])
_ROUTES: dict[tuple[Any, ...], _Handler] = {
    ("GET", 2, "projects"): GitLabSim._get_project,
    ("GET", 3, "projects", "merge_requests"): GitLabSim._list_mrs,
    ("POST", 3, "projects", "merge_requests"): GitLabSim._create_mr,
    ("GET", 4, "projects", "merge_requests"): GitLabSim._get_mr,
    ("PUT", 5, "projects", "merge_requests", "merge"): GitLabSim._merge_mr,
    ("POST", 5, "projects", "merge_requests", "notes"): GitLabSim._add_note,
    ("GET", 5, "projects", "merge_requests", "notes"): GitLabSim._list_notes,
}


def _params(request: Request, raw: bytes, body: Any) -> dict[str, Any]:
    """The query string, then the body (JSON or form-encoded) over it, as Grape merges
    them. A body that is neither → 400."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key.endswith("[]"):
            params.setdefault(key, []).append(value)
        else:
            params[key] = value
    if not raw:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        if not isinstance(body, dict):
            raise GitLabError(400, {"error": "The provided content-type is not supported."})
        params.update(body)
    elif "x-www-form-urlencoded" in content_type:
        params.update(dict(urllib.parse.parse_qsl(raw.decode(errors="replace"))))
    else:
        raise GitLabError(415, {"error": "The provided content-type is not supported."})
    return params


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _redacted(request: Request) -> dict[str, str]:
    out = {}
    for name, value in request.headers.items():
        name = name.lower()
        if name == "private-token":
            value = "<redacted>"
        elif name in ("authorization", "proxy-authorization"):
            value = value.partition(" ")[0] + " <redacted>"
        elif name == "cookie":
            value = "<redacted>"
        out[name] = value
    return out


def _answer(response: Response) -> Any:
    raw = bytes(response.body)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
