"""The Jira sim's REST endpoints: what each route of /rest/api/2 does once the server has
recorded the request, checked faults and credentials, and parsed the body (`Call`).

Each endpoint reads its parameters, asks the model (`JiraState`), searches with `jql`, and
answers with `render`'s shapes; failures raise `JiraError`. `JiraApi` also holds the
create-holding test control (a create that hangs, to kill a process mid-filing).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.sim.jira.adf import text_of
from bot.sim.jira.jql import run_jql
from bot.sim.jira.model import (
    JiraError,
    JiraState,
    User,
    bad_transition,
    jira_time,
    ref_value,
    validate_update,
)
from bot.sim.jira.render import JiraRenderer

__all__ = ["CLOUD_SEARCH_REMOVED", "Call", "Handler", "JiraApi"]

CLOUD_SEARCH_REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at "
    "https://developer.atlassian.com/changelog/#CHANGE-2046"
)


@dataclass(slots=True)
class Call:
    """One authenticated (or anonymous-allowed) request: the request, its parsed body, and
    who made it."""

    request: Request
    body: Any
    user: User | None


Handler = Callable[[Call], Awaitable[Response]]


class JiraApi:
    """The endpoints, as `Handler`s the server routes to."""

    def __init__(self, state: JiraState, render: JiraRenderer) -> None:
        self.state = state
        self.render = render
        self._hold: tuple[int, bool] | None = None
        self._hold_released = threading.Event()
        self._held = 0
        self._create_calls = 0

    @property
    def cloud(self) -> bool:
        return self.state.cloud

    # ------------------------------------------------------------------ holding creates

    def hold_creates(self, after: int, *, answered: bool = False) -> None:
        """See `JiraSim.hold_creates`."""
        with self.state.lock:
            self._hold = (self._create_calls + after, answered)
            self._hold_released.clear()

    def release_creates(self) -> None:
        self._hold_released.set()

    @property
    def held_creates(self) -> int:
        with self.state.lock:
            return self._held

    async def _wait_released(self, request: Request) -> bool:
        """Wait for release_creates(); False when the caller went away meanwhile."""
        with self.state.lock:
            self._held += 1
        try:
            while not self._hold_released.is_set():
                if await request.is_disconnected():
                    return False
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)  # a disconnect racing the release is still seen
            return not await request.is_disconnected()
        finally:
            with self.state.lock:
                self._held -= 1

    # ------------------------------------------------------------------ endpoints

    async def server_info(self, call: Call) -> Response:
        return JSONResponse(self.render.server_info())

    async def myself(self, call: Call) -> Response:
        assert call.user is not None
        return JSONResponse(self.render.user(call.user))

    async def fields(self, call: Call) -> Response:
        return JSONResponse(self.render.fields())

    async def project(self, call: Call) -> Response:
        with self.state.lock:
            project = self.state.find_project(call.request.path_params["key"])
            if project is None:
                raise JiraError(
                    404,
                    messages=[
                        f"No project could be found with key '{call.request.path_params['key']}'."
                    ],
                )
            return JSONResponse(self.render.project(project))

    async def create(self, call: Call) -> Response:
        with self.state.lock:
            self._create_calls += 1
            hold = self._hold is not None and self._create_calls == self._hold[0] + 1
            answered = bool(hold and self._hold and self._hold[1])
        if hold and not answered and not await self._wait_released(call.request):
            return Response(status_code=499)  # nobody is listening; nothing was created
        response = await self._create_now(call)
        if hold and answered:
            await self._wait_released(call.request)
        return response

    async def _create_now(self, call: Call) -> Response:
        body = call.body if isinstance(call.body, dict) else {}
        fields = body.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        assert call.user is not None
        state = self.state
        with state.lock:
            project = state.find_project(ref_value(fields.get("project"), "key", "id"))
            if project is None:
                raise JiraError(400, errors={"project": "Specify a valid project ID or key"})
            values, errors = state.validate(project, fields, creating=True)
            update_ops, update_errors = validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            issue = state.create_issue(project, values, call.user)
            state.apply_update(issue, update_ops, call.user)
            answer: dict[str, Any] = {
                "id": issue.id,
                "key": issue.key,
                "self": self.render.issue_url(issue),
            }
            transition = body.get("transition")
            if isinstance(transition, dict):
                tid = str(transition.get("id", ""))
                if any(t[0] == tid for t in state.transitions_of(issue)):
                    state.apply_transition(issue, tid)
                    outcome = {"status": 200, "errorCollection": _no_errors()}
                else:
                    outcome = {
                        "status": 400,
                        "errorCollection": {
                            "errorMessages": [bad_transition(tid)],
                            "errors": {},
                        },
                    }
                answer["transition"] = outcome
        return JSONResponse(answer, status_code=201)

    async def get_issue(self, call: Call) -> Response:
        wanted = _fields_param(call)
        with self.state.lock:
            issue = self.state.issue(call.request.path_params["key"])
            return JSONResponse(self.render.issue(issue, wanted))

    async def edit_issue(self, call: Call) -> Response:
        body = call.body if isinstance(call.body, dict) else {}
        fields = body.get("fields") or {}
        if not isinstance(fields, dict):
            raise JiraError(400, messages=["Can not deserialize the 'fields' of the request."])
        assert call.user is not None
        state = self.state
        with state.lock:
            issue = state.issue(call.request.path_params["key"])
            project = state.projects[issue.project]
            values, errors = state.validate(project, fields, creating=False)
            update_ops, update_errors = validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            state.edit_issue(issue, fields, values)
            state.apply_update(issue, update_ops, call.user)
            issue.updated = jira_time()
        return Response(status_code=204)

    async def transitions(self, call: Call) -> Response:
        state = self.state
        with state.lock:
            issue = state.issue(call.request.path_params["key"])
            if call.request.method == "GET":
                only = call.request.query_params.get("transitionId")
                return JSONResponse(
                    {
                        "expand": "transitions",
                        "transitions": [
                            self.render.transition(tid, name, to)
                            for tid, name, to in state.transitions_of(issue)
                            if only is None or only == tid
                        ],
                    }
                )
            body = call.body if isinstance(call.body, dict) else {}
            transition = body.get("transition")
            tid = str(transition.get("id", "")) if isinstance(transition, dict) else ""
            if not tid:
                raise JiraError(400, messages=["Missing 'transition' identifier"])
            if not any(t[0] == tid for t in state.transitions_of(issue)):
                raise JiraError(400, messages=[bad_transition(tid)])
            fields = body.get("fields") or {}
            values, errors = state.validate(state.projects[issue.project], fields, creating=False)
            update_ops, update_errors = validate_update(body.get("update"))
            errors.update(update_errors)
            if errors:
                raise JiraError(400, errors=errors)
            if "duedate" in fields:
                issue.duedate = values.get("duedate")
            assert call.user is not None
            state.apply_update(issue, update_ops, call.user)
            state.apply_transition(issue, tid)
        return Response(status_code=204)

    async def comment(self, call: Call) -> Response:
        assert call.user is not None
        with self.state.lock:
            issue = self.state.issue(call.request.path_params["key"])
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
                        "comments": [self.render.comment(issue, c) for c in page],
                    }
                )
            body = call.body if isinstance(call.body, dict) else {}
            text = text_of(body.get("body"))
            if not text or not text.strip():
                raise JiraError(400, errors={"comment": "Comment body can not be empty!"})
            comment = self.state.add_comment(issue, text, call.user)
            return JSONResponse(self.render.comment(issue, comment), status_code=201)

    async def search_jql(self, call: Call) -> Response:
        """Jira Cloud's enhanced search (GET/POST /rest/api/2/search/jql)."""
        if not self.cloud:
            return await self.no_such_resource(call)
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
        with self.state.lock:
            found = run_jql(self.state, jql)
            page = found[start : start + size]
            answer: dict[str, Any] = {
                "issues": [self.render.issue(i, wanted, search=True) for i in page],
                "isLast": start + size >= len(found),
            }
            if not answer["isLast"]:
                answer["nextPageToken"] = f"sim-{start + size}"
        return JSONResponse(answer)

    async def search(self, call: Call) -> Response:
        """The classic search (Server/Data Center); removed from Jira Cloud."""
        if self.cloud:
            raise JiraError(410, messages=[CLOUD_SEARCH_REMOVED])
        params = _search_params(call)
        jql = params.get("jql") or ""
        start = _int(params.get("startAt"), 0, "startAt")
        size = min(_int(params.get("maxResults"), 50, "maxResults"), 1000)
        wanted = _wanted(params.get("fields"), default={"*navigable"})
        with self.state.lock:
            found = run_jql(self.state, jql)
            page = found[start : start + size]
            return JSONResponse(
                {
                    "expand": "schema,names",
                    "startAt": start,
                    "maxResults": size,
                    "total": len(found),
                    "issues": [self.render.issue(i, wanted, search=True) for i in page],
                }
            )

    async def user_search(self, call: Call) -> Response:
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
        with self.state.lock:
            found = [
                u
                for u in self.state.users.values()
                if ((u.active and include_active) or (not u.active and include_inactive))
                and _user_matches(u, term, cloud=self.cloud)
            ]
            return JSONResponse([self.render.user(u) for u in found[start : start + size]])

    async def no_such_resource(self, call: Call) -> Response:
        return JSONResponse(
            {"message": f"null for uri: {call.request.url}", "status-code": 404},
            status_code=404,
        )


# ---------------------------------------------------------------------- parameters


def _no_errors() -> dict[str, Any]:
    return {"errorMessages": [], "errors": {}}


def _fields_param(call: Call) -> set[str] | None:
    values = call.request.query_params.getlist("fields")
    return _wanted(values, default=None) if values else None


def _wanted(raw: Any, *, default: set[str] | None) -> set[str] | None:
    """`fields` as a comma list, repeated parameters or a JSON list → a set of names."""
    if raw is None or raw == [] or raw == "":
        return default
    items = raw if isinstance(raw, list) else [raw]
    names = {part.strip() for item in items for part in str(item).split(",") if part.strip()}
    return names or default


def _search_params(call: Call) -> dict[str, Any]:
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


def _user_matches(user: User, term: str, *, cloud: bool) -> bool:
    if not term:
        return False
    words = [w.lower() for w in user.display_name.split()]
    candidates = [user.display_name.lower(), *words, user.email.lower()]
    if not cloud:
        candidates.append(user.name.lower())
    return any(c.startswith(term) for c in candidates)
