"""PagerDuty's REST API v2 (api.pagerduty.com): on-calls, users, services, incidents, their
alerts, log entries and notes, with PagerDuty's auth, errors and classic pagination.

Every request needs ``Authorization: Token token=<token>`` (otherwise 401 with
``{"error": {"message": "Authentication failed", "code": 2006}}``):

    GET /oncalls        escalation_policy_ids[], user_ids[], schedule_ids[], include[]
                        (users, escalation_policies, schedules), earliest, since, until,
                        classic pagination (limit ≤ 100, default 25; offset; more; total)
    GET /users          query= (name or email contains), classic pagination
    GET /users/{id}     {"user": {…}}, 404 when unknown
    GET /services/{id}  {"service": {…}}
    GET /incidents      incident_key, statuses[], service_ids[], urgencies[], since, until,
                        date_range=all; oldest first; classic pagination
    GET /incidents/{id}                 {"incident": {…}} (REST shape: `assignments`, …)
    PUT /incidents/{id}                 {"incident": {"type": "incident_reference",
                                        "status": "acknowledged" | "resolved"}}
    GET /incidents/{id}/alerts          classic pagination
    GET /incidents/{id}/log_entries     classic pagination (trigger, acknowledge, resolve,
                                        annotate, escalate, assign log entries)
    POST /incidents/{id}/notes          {"note": {"content": …}} → 201 {"note": {…}}
    GET /incidents/{id}/notes           {"notes": […]} (not paginated, as PagerDuty)

Writes (PUT, POST) need a ``From`` header naming a user's email: missing → 400 code 2016
("You must specify a user's email address in the "From" header …"), unknown → 400 code
1008 ("Requester User Not Found"), as PagerDuty answers account-level tokens. Errors always
use the ``{"error": {"message", "code", "errors"?}}`` envelope.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.model import (
    ERRORS,
    Incident,
    OnCall,
    deep_copy,
    iso,
    reference,
    shallow_copy,
    user_reference,
)

__all__ = [
    "DEFAULT_LIMIT",
    "FROM_MISSING",
    "FROM_UNKNOWN",
    "MAX_LIMIT",
    "PdError",
    "RestApi",
    "error",
]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
FROM_MISSING = (
    'You must specify a user\'s email address in the "From" header to perform this action',
    2016,
)
FROM_UNKNOWN = ("Requester User Not Found", 1008)
_MONTH = timedelta(days=31)

Handler = Callable[[Request], Awaitable[Response]]


class PdError(Exception):
    """A REST request refused: answered `status` with PagerDuty's error envelope."""

    def __init__(
        self,
        status: int,
        *,
        errors: list[str] | None = None,
        message: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.errors = errors or []
        self.message = message  # (message, code) instead of the status' default


class RestApi:
    """The REST API's routes over an account."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def routes(self) -> list[Route]:
        """REST API v2 (api.pagerduty.com): token auth, PagerDuty's error envelope. The last
        route answers 404 for any other path."""
        rest = self._endpoint
        return [
            Route("/oncalls", rest(self._list_oncalls), methods=["GET"]),
            Route("/users", rest(self._list_users), methods=["GET"]),
            Route("/users/{id}", rest(self._get_user), methods=["GET"]),
            Route("/services/{id}", rest(self._get_service), methods=["GET"]),
            Route("/incidents", rest(self._list_incidents), methods=["GET"]),
            Route("/incidents/{id}", rest(self._get_incident), methods=["GET"]),
            Route("/incidents/{id}", rest(self._put_incident), methods=["PUT"]),
            Route("/incidents/{id}/alerts", rest(self._list_alerts), methods=["GET"]),
            Route("/incidents/{id}/log_entries", rest(self._list_log_entries), methods=["GET"]),
            Route("/incidents/{id}/notes", rest(self._list_notes), methods=["GET"]),
            Route("/incidents/{id}/notes", rest(self._post_note), methods=["POST"]),
            Route("/{path:path}", rest(self._not_found), methods=["GET", "POST", "PUT", "DELETE"]),
        ]

    def _endpoint(self, handler: Handler) -> Handler:
        """Record, then down/forced statuses, then auth, then the handler; errors as
        PagerDuty."""
        account = self.account

        async def endpoint(request: Request) -> Response:
            at = time.time()
            body = await request.body()
            try:
                response = self._forced_response(request) or self._auth_error(request)
                if response is None:
                    response = await handler(request)
                    response = self._lose(request, response)
            except PdError as e:
                response = error(e.status, errors=e.errors, message=e.message)
            account.record(request, body, response, at=at)
            return response

        return endpoint

    def _forced_response(self, request: Request) -> Response | None:
        forced = self.account.take_forced(request.url.path)
        if forced is None:
            return None
        status, headers = forced
        return error(status, headers=headers)

    def _lose(self, request: Request, response: Response) -> Response:
        """`lose_answers`: the work is done, the answer replaced by a gateway error."""
        if response.status_code >= 400:
            return response
        status = self.account.take_lost(request.url.path, request.method)
        return response if status is None else error(status)

    def _auth_error(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        prefix = "Token token="
        given = auth[len(prefix) :] if auth.startswith(prefix) else ""
        if given and hmac.compare_digest(given.encode(), self.account.token.encode()):
            return None
        return error(401)

    def _requester(self, request: Request) -> dict[str, Any]:
        """The user named by the ``From`` header a write needs (400 as PagerDuty otherwise)."""
        email = request.headers.get("from", "").strip()
        if not email:
            raise PdError(400, message=FROM_MISSING)
        user = self.account.user_by_email(email)
        if user is None:
            raise PdError(400, message=FROM_UNKNOWN)
        return user

    def _incident_or_404(self, request: Request) -> Incident:
        incident = self.account.state.incidents.get(request.path_params["id"])
        if incident is None:
            raise PdError(404)
        return incident

    async def _not_found(self, request: Request) -> Response:
        raise PdError(404)

    # ------------------------------------------------------------------ people

    async def _list_oncalls(self, request: Request) -> Response:
        q = request.query_params
        policies = set(q.getlist("escalation_policy_ids[]"))
        users = set(q.getlist("user_ids[]"))
        schedules = set(q.getlist("schedule_ids[]"))
        include = set() if self.account.ignore_include else set(q.getlist("include[]"))
        at = datetime.now(UTC)
        since = _time_param(q.get("since"), "since") or at
        until = _time_param(q.get("until"), "until") or at
        if until < since:
            raise PdError(400, errors=["Until cannot be before since"])
        earliest = _bool_param(q.get("earliest"))
        with self.account.lock:
            entries = [
                o
                for o in self.account.state.oncalls
                if (not policies or o.escalation_policy_id in policies)
                and (not users or o.user_id in users)
                and (not schedules or o.schedule_id in schedules)
                and (o.start is None or o.start <= until)
                and (o.end is None or o.end >= since)
            ]
            if earliest:
                first: dict[tuple[str, int, str], OnCall] = {}
                for o in entries:
                    key = (o.escalation_policy_id, o.level, o.user_id)
                    best = first.get(key)
                    if best is None or o.start_key() < best.start_key():
                        first[key] = o
                entries = list(first.values())
            entries.sort(key=lambda o: (o.escalation_policy_id, o.level))
            rendered = [self._render_oncall(o, include) for o in entries]
        return _page(request, "oncalls", rendered)

    def _render_oncall(self, o: OnCall, include: set[str]) -> dict[str, Any]:
        state = self.account.state
        user = state.users[o.user_id]
        policy = reference(
            "escalation_policy",
            o.escalation_policy_id,
            state.policies.get(o.escalation_policy_id, o.escalation_policy_id),
        )
        if "escalation_policies" in include:
            policy = {**policy, "type": "escalation_policy", "name": policy["summary"]}
        schedule = None
        if o.schedule_id is not None:
            schedule = reference("schedule", o.schedule_id, state.schedules[o.schedule_id])
            if "schedules" in include:
                schedule = {**schedule, "type": "schedule", "name": schedule["summary"]}
        return {
            "escalation_policy": policy,
            "escalation_level": o.level,
            "schedule": schedule,
            "user": shallow_copy(user) if "users" in include else user_reference(user),
            "start": iso(o.start),
            "end": iso(o.end),
        }

    async def _list_users(self, request: Request) -> Response:
        query = (request.query_params.get("query") or "").lower()
        with self.account.lock:
            found = [
                shallow_copy(u)
                for u in self.account.state.users.values()
                if not query or query in u["name"].lower() or query in u["email"].lower()
            ]
        return _page(request, "users", found)

    async def _get_service(self, request: Request) -> Response:
        with self.account.lock:
            service = self.account.state.services.get(request.path_params["id"])
            if service is None:
                raise PdError(404)
            return JSONResponse({"service": shallow_copy(service)})

    async def _get_user(self, request: Request) -> Response:
        with self.account.lock:
            user = self.account.state.users.get(request.path_params["id"])
            if user is None:
                raise PdError(404)
            return JSONResponse({"user": shallow_copy(user)})

    # ------------------------------------------------------------------ incidents

    async def _list_incidents(self, request: Request) -> Response:
        q = request.query_params
        statuses = set(q.getlist("statuses[]"))
        bad = sorted(statuses - {"triggered", "acknowledged", "resolved"})
        if bad:
            raise PdError(400, errors=[f"Statuses {bad} are not valid"])
        services = set(q.getlist("service_ids[]"))
        urgencies = set(q.getlist("urgencies[]"))
        key = q.get("incident_key")
        every_date = q.get("date_range") == "all"
        at = datetime.now(UTC)
        # PagerDuty's default window is the last month; date_range=all lifts it.
        since = None if every_date else (_time_param(q.get("since"), "since") or at - _MONTH)
        until = None if every_date else (_time_param(q.get("until"), "until") or at)
        with self.account.lock:
            found = [
                self.account.rest_incident(i)
                for i in self.account.state.incidents.values()
                if (not statuses or i.status in statuses)
                and (not services or i.service_id in services)
                and (not urgencies or i.urgency in urgencies)
                and (key is None or i.incident_key == key)
                and (since is None or i.created_at >= since)
                and (until is None or i.created_at <= until)
            ]
        return _page(request, "incidents", found)

    async def _get_incident(self, request: Request) -> Response:
        with self.account.lock:
            incident = self._incident_or_404(request)
            return JSONResponse({"incident": self.account.rest_incident(incident)})

    async def _put_incident(self, request: Request) -> Response:
        body = await _json_body(request)
        with self.account.lock:
            incident = self._incident_or_404(request)
            user = self._requester(request)
            wrapped = body.get("incident") if isinstance(body, dict) else None
            if not isinstance(wrapped, dict):
                raise PdError(400, errors=["Incident is missing"])
            if wrapped.get("type") not in ("incident", "incident_reference"):
                raise PdError(400, errors=["Type must be incident or incident_reference"])
            status = wrapped.get("status")
            if status not in (None, "acknowledged", "resolved"):
                raise PdError(400, errors=["Status must be acknowledged or resolved"])
            agent = user_reference(user)
            if status is not None and incident.status == "resolved":
                raise PdError(400, errors=["Incident Already Resolved"])
            if status == "acknowledged" and incident.status == "triggered":
                self.account.acknowledge(incident, agent, None)
            elif status == "resolved":
                self.account.resolve(incident, agent, None)
            return JSONResponse({"incident": self.account.rest_incident(incident)})

    async def _list_alerts(self, request: Request) -> Response:
        with self.account.lock:
            alerts = deep_copy(self._incident_or_404(request).alerts)
        return _page(request, "alerts", alerts)

    async def _list_log_entries(self, request: Request) -> Response:
        with self.account.lock:
            entries = deep_copy(self._incident_or_404(request).log_entries)
        return _page(request, "log_entries", entries)

    async def _list_notes(self, request: Request) -> Response:
        with self.account.lock:
            return JSONResponse({"notes": deep_copy(self._incident_or_404(request).notes)})

    async def _post_note(self, request: Request) -> Response:
        body = await _json_body(request)
        with self.account.lock:
            incident = self._incident_or_404(request)
            user = self._requester(request)
            note = body.get("note") if isinstance(body, dict) else None
            content = note.get("content") if isinstance(note, dict) else None
            if not isinstance(content, str) or not content.strip():
                raise PdError(400, errors=["Content can't be blank"])
            created = self.account.add_note(incident, user, content, None)
            return JSONResponse({"note": created}, status_code=201)


# ---------------------------------------------------------------------- errors, paging


def error(
    status: int,
    *,
    errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
    message: tuple[str, int] | None = None,
) -> Response:
    """PagerDuty's REST error envelope: ``{"error": {"message", "code", "errors"?}}``."""
    text, code = message or ERRORS.get(status, ("Error", 2000))
    body: dict[str, Any] = {"message": text, "code": code}
    if errors:
        body["errors"] = errors
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise PdError(400, errors=["Invalid JSON"]) from None


def _page(request: Request, wrapper: str, items: list[dict[str, Any]]) -> Response:
    """Classic pagination as PagerDuty does it: limit (≤ 100), offset, more, total."""
    q = request.query_params
    limit = min(_int_param(q.get("limit"), DEFAULT_LIMIT, "limit"), MAX_LIMIT)
    offset = _int_param(q.get("offset"), 0, "offset")
    if limit < 1 or offset < 0:
        raise PdError(400, errors=["Limit must be positive and offset not negative"])
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


def _time_param(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise PdError(400, errors=[f"{name.capitalize()} is not a valid date"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise PdError(400, errors=[f"{name.capitalize()} must be an integer"]) from None


def _bool_param(raw: str | None) -> bool:
    return (raw or "").lower() == "true"
