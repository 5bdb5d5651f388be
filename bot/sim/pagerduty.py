"""PagerDuty (REST API v2, Events API v2, v3 webhooks, Incident Workflows), for the demo and
the tests.

`PagerDutySim` answers what rollbot asks PagerDuty, over real HTTPS on loopback (the
`pagerduty` client refuses any base URL that is not ``https://``; trust `ca_file`), with
PagerDuty's shapes. One server plays both hosts: `url` is the REST API base URL *and* the
Events API base URL (``events_url``), as api.pagerduty.com and events.pagerduty.com.

REST API v2 (``Authorization: Token token=<token>`` on every request; otherwise 401 with
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

Events API v2 (``POST /v2/enqueue``, no token: the integration's ``routing_key`` is in the
body). Invalid events → 400 ``{"status": "invalid event", "message": "Event object is
invalid", "errors": […]}`` (unknown routing key: "Invalid routing key"); otherwise 202
``{"status": "success", "message": "Event processed", "dedup_key": …}``, the key generated
(a UUID's hex) when a trigger has none. Semantics, per integration and dedup key:

- trigger, no open alert for the key → a new incident (``incident_key`` = dedup key, title =
  summary, urgency high for critical/error and low otherwise, the integration's service and
  its escalation policy, assigned to who is on call at that policy's first level now) with
  one alert keeping the payload: ``body.details`` = custom_details, ``body.contexts`` = links
  and images, ``body.cef_details`` = the PD-CEF fields;
- trigger, open alert for the key → a trigger log entry on that alert, as PagerDuty does
  ("a trigger log entry is created on an existing alert"): no new incident, no new alert;
- acknowledge → the incident acknowledged (an ``acknowledgements`` entry);
- resolve → the alert and the incident resolved; a later trigger with the same key opens a
  new incident;
- acknowledge or resolve of an unknown or resolved key → dropped (still 202).

v3 webhooks: `subscribe` registers a receiver. Each incident change emits an envelope
``{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}``
(incident.triggered, .acknowledged, .resolved, .escalated, .reassigned with the incident
as data; incident.annotated with the ``incident_note``). ``agent`` is the user who acted (a
``user_reference``), or for the Events API the integration (an
``events_api_v2_inbound_integration_reference``, a sim choice). Deliveries are POSTed from
a sender thread (never inside the request that caused them), in order, one at a time, with
these headers:

    Content-Type            application/json; charset=utf-8
    User-Agent              PagerDuty-Webhook/V3.0
    X-PagerDuty-Signature   v1=<hex HMAC-SHA256(secret, raw body)>, comma-separated,
                            newest secret first, while a secret is rotated
    X-Webhook-Id            unique per delivery, the same on its retries and `redeliver`
    X-Webhook-Subscription  the subscription id
    (plus the subscription's custom headers)

A delivery answered 5xx or 429, or not answered (connection refused, timeout), is retried up
to 4 times (5 attempts, as PagerDuty) after `webhook_retry_delays`; other 4xx and TLS errors
drop it at once (PagerDuty's "permanent errors"). Each delivery is recorded (`deliveries`)
with every status answered.

Incident Workflows: `add_workflow(name, url, headers=, body=)` is a workflow with one "Send a
Webhook POST" step; `run_workflow(incident_id, name, user_id)` runs it as that user, POSTing
the body with its ``{{…}}`` field references replaced (`WORKFLOW_VARIABLES`) from the sender
thread. Without `body`, `DEFAULT_WORKFLOW_BODY`:

    {"action": "{{workflow.name}}",
     "incident": {"id": "{{incident.id}}", "incident_key": "{{incident.incident_key}}",
                  "service_id": "{{incident.service.id}}"},
     "user": {"id": "{{current_user.id}}", "email": "{{current_user.email}}",
              "name": "{{current_user.name}}"}}

A workflow's POST carries ``Content-Type: application/json`` and the author's headers only
(no signature: PagerDuty signs v3 webhooks, not workflow requests). PagerDuty accepts only
https URLs there; the sim also posts to http (loopback receivers in the tests).

Test controls: `add_user`, `add_escalation_policy`, `add_service`, `set_oncall`,
`add_integration`; a person's actions in the web UI (`acknowledge`, `resolve`, `escalate`,
`reassign`, `annotate`), each emitting its webhook with that person as agent; `subscribe`,
`rotate_secret`, `finish_rotation`, `redeliver`, `add_workflow`, `run_workflow`;
`ignore_include`; `force_status` (the next *n* requests answer a status, e.g. 429 with
``Retry-After``); `set_down` (connection refused until brought back on the same port, or
with `status=` every request of both APIs answered with it, e.g. 503); `reset`. Inspection:
`requests` (everything received, refused requests included), `events` (Events API bodies
received), `incidents`, `incident`, `incident_by_key`, `notes`, `webhook_events`,
`deliveries`, `wait_deliveries`, `drain`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import re
import secrets
import socket
import ssl
import string
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import httpx
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
EVENTS_PATH = "/v2/enqueue"
DEFAULT_TOKEN = "u+sim-pagerduty-token"  # the REST API token accepted unless another is given

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
FROM_MISSING = (
    'You must specify a user\'s email address in the "From" header to perform this action',
    2016,
)
FROM_UNKNOWN = ("Requester User Not Found", 1008)

SEVERITIES = ("critical", "error", "warning", "info")
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255

# v3 webhook event types (docs/webhooks/01-Overview.md); the sim emits the incident.* ones
# marked in EMITTED_EVENT_TYPES, and accepts subscriptions to any of these.
WEBHOOK_EVENT_TYPES = frozenset(
    {
        "incident.acknowledged",
        "incident.annotated",
        "incident.delegated",
        "incident.escalated",
        "incident.priority_updated",
        "incident.reassigned",
        "incident.reopened",
        "incident.resolved",
        "incident.responder.added",
        "incident.responder.replied",
        "incident.status_update_published",
        "incident.triggered",
        "incident.unacknowledged",
        "service.created",
        "service.deleted",
        "service.updated",
    }
)
EMITTED_EVENT_TYPES = frozenset(
    {
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
        "incident.escalated",
        "incident.reassigned",
        "incident.annotated",
    }
)
WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
WEBHOOK_MAX_ATTEMPTS = 5  # PagerDuty: "retried up to 4 times (total of 5 attempts)"

WORKFLOW_VARIABLES = (
    "workflow.name",
    "incident.id",
    "incident.number",
    "incident.title",
    "incident.status",
    "incident.urgency",
    "incident.html_url",
    "incident.incident_key",
    "incident.service.id",
    "incident.service.summary",
    "current_user.id",
    "current_user.email",
    "current_user.name",
)
DEFAULT_WORKFLOW_BODY: dict[str, Any] = {
    "action": "{{workflow.name}}",
    "incident": {
        "id": "{{incident.id}}",
        "incident_key": "{{incident.incident_key}}",
        "service_id": "{{incident.service.id}}",
    },
    "user": {
        "id": "{{current_user.id}}",
        "email": "{{current_user.email}}",
        "name": "{{current_user.name}}",
    },
}
_FIELD_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_UI_CLIENT = {"name": "PagerDuty"}  # a person in the web app, as in the fixture

Handler = Callable[[Request], Awaitable[Response]]
_T = TypeVar("_T")
Verify = bool | str | ssl.SSLContext


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery: the status answered, or why there was no answer."""

    at: float  # time.time()
    status: int | None
    error: str | None = None


@dataclass(eq=False, slots=True)
class Delivery:
    """One webhook (or workflow request) to send, and what became of it.

    `outcome`: pending → delivered (2xx), dropped (4xx other than 429, TLS error: not
    retried), failed (still 5xx/429/unanswered after every attempt) or cancelled (`reset`).
    """

    id: str  # the X-Webhook-Id of a subscription's delivery; an internal id for a workflow
    kind: Literal["webhook", "workflow"]
    url: str
    headers: dict[str, str]
    body: bytes
    verify: Verify = True
    event_type: str | None = None  # webhooks: "incident.acknowledged"
    subscription_id: str | None = None
    workflow: str | None = None
    incident_id: str | None = None
    redelivery_of: Delivery | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outcome: Literal["pending", "delivered", "dropped", "failed", "cancelled"] = "pending"
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def status(self) -> int | None:
        """The last status code answered (None: never answered)."""
        for attempt in reversed(self.attempts):
            if attempt.status is not None:
                return attempt.status
        return None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def json(self) -> Any:
        return json.loads(self.body)

    def wait(self, timeout: float = 10.0) -> Delivery:
        """Block until delivered, dropped, failed or cancelled; TimeoutError otherwise."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"delivery {self.id} to {self.url} still {self.outcome}")
        return self

    def _finish(self, outcome: Literal["delivered", "dropped", "failed", "cancelled"]) -> None:
        self.outcome = outcome
        self._done.set()


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
class _Integration:
    id: str
    routing_key: str
    service_id: str


@dataclass(slots=True)
class _Incident:
    id: str
    number: int
    incident_key: str
    title: str
    urgency: str
    service_id: str
    escalation_policy_id: str
    integration_id: str | None
    created_at: datetime
    status: str = "triggered"
    assignees: list[tuple[str, datetime]] = field(default_factory=list)  # user id, since
    acknowledgements: list[tuple[dict[str, Any], datetime]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    last_status_change_at: datetime | None = None
    last_status_change_by: dict[str, Any] | None = None


@dataclass(slots=True)
class _Subscription:
    id: str
    url: str
    secrets: list[str]  # newest first; two while rotating
    event_types: frozenset[str]
    verify: Verify
    service_id: str | None
    custom_headers: dict[str, str]


@dataclass(slots=True)
class _Workflow:
    name: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | list[Any] | str
    verify: Verify


@dataclass(slots=True)
class _State:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)  # id -> name
    schedules: dict[str, str] = field(default_factory=dict)
    oncalls: list[_OnCall] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced: list[_Forced] = field(default_factory=list)
    lost: list[tuple[str | None, str | None, int]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    integrations: dict[str, _Integration] = field(default_factory=dict)  # by routing key
    incidents: dict[str, _Incident] = field(default_factory=dict)  # in creation order
    open_alerts: dict[tuple[str, str], str] = field(default_factory=dict)  # → incident id
    events: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    workflows: dict[str, _Workflow] = field(default_factory=dict)
    webhook_events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    down_status: int | None = None


class _PdError(Exception):
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


class _InvalidEvent(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors)
        self.errors = errors


# ---------------------------------------------------------------------- webhook sender


class _Sender:
    """Sends deliveries from one thread, in order, one at a time (PagerDuty keeps a
    subscription's webhooks in order and holds later ones while one is being retried)."""

    def __init__(self, *, retry_delays: tuple[float, ...], timeout: float) -> None:
        self.retry_delays = retry_delays
        self.timeout = timeout
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._pending = 0
        self._idle = threading.Condition()
        self._clients: dict[object, httpx.Client] = {}

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pagerduty-sim-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._thread = None
        self.cancel_pending()
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def submit(self, delivery: Delivery) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(delivery)

    def cancel_pending(self) -> None:
        """Forget what is queued; the delivery in flight stops before its next retry."""
        self._generation += 1
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item._finish("cancelled")
                self._settled()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _settled(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                continue
            try:
                self._deliver(item)
            finally:
                if not item.done:
                    item._finish("cancelled")
                self._settled()

    def _deliver(self, delivery: Delivery) -> None:
        generation = self._generation
        delays = (0.0, *self.retry_delays)[:WEBHOOK_MAX_ATTEMPTS]
        for delay in delays:
            if delay and self._stop.wait(delay):
                return
            if generation != self._generation:
                return
            try:
                response = self._client(delivery.verify).post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
            except httpx.TransportError as e:
                delivery.attempts.append(Attempt(time.time(), None, f"{type(e).__name__}: {e}"))
                if _is_tls_error(e):
                    delivery._finish("dropped")  # PagerDuty does not retry TLS errors
                    return
                continue
            delivery.attempts.append(Attempt(time.time(), response.status_code))
            if response.is_success:
                delivery._finish("delivered")
                return
            if response.status_code != 429 and response.status_code < 500:
                delivery._finish("dropped")
                return
        delivery._finish("failed")

    def _client(self, verify: Verify) -> httpx.Client:
        key: object = verify if isinstance(verify, bool | str) else id(verify)
        client = self._clients.get(key)
        if client is None:
            client = httpx.Client(verify=verify, timeout=self.timeout, follow_redirects=False)
            self._clients[key] = client
        return client


def _is_tls_error(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# ---------------------------------------------------------------------- the sim


class PagerDutySim:
    """PagerDuty's REST and Events APIs on a loopback HTTPS port, in its own thread and event
    loop, plus a webhook sender thread.

    Pass `url` as the clients' base URL (REST and Events) and `ca_file` as the CA to trust.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        tls_enabled: bool = True,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4),
        webhook_timeout: float = 5.0,
    ) -> None:
        self.host, self._port = host, port
        self.token = token
        self.tls_enabled = tls_enabled
        self._tls = tls.write_files() if tls_enabled else None
        self._lock = threading.RLock()
        self._state = _State()
        self._down = False
        self._number = 0
        self.ignore_include = False  # answer bare references whatever include[] asks
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        # PagerDuty waits 5 s for an answer and retries over ~20 minutes; the sim keeps the
        # same number of attempts with short delays.
        self._sender = _Sender(retry_delays=webhook_retry_delays, timeout=webhook_timeout)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The REST API base URL (``https://127.0.0.1:<port>``), like https://api.pagerduty.com."""
        if not self._port:
            raise RuntimeError("PagerDutySim is not started")
        scheme = "https" if self.tls_enabled else "http"
        return f"{scheme}://{self.host}:{self._port}"

    @property
    def events_url(self) -> str:
        """The Events API base URL, like https://events.pagerduty.com (the same server)."""
        return self.url

    @property
    def ca_file(self) -> str | None:
        """The CA certificate clients must trust (None without TLS)."""
        return self._tls.ca_file if self._tls else None

    def start(self) -> PagerDutySim:
        self._sender.start()
        self._start_server()
        return self

    def stop(self) -> None:
        self._stop_server()
        self._sender.stop()

    def __enter__(self) -> PagerDutySim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_server(self) -> None:
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

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for idle keep-alive connections
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        if self._socket is not None:
            self._socket.close()
        self._thread = self._server = self._socket = None

    def set_down(self, down: bool = True, *, status: int | None = None) -> None:
        """Down: the port refuses connections (both APIs). With `status` (e.g. 503) the port
        stays open and every request, REST or Events, is answered with that status instead.
        Up again: served on the same port, answering normally."""
        with self._lock:
            self._state.down_status = status if down else None
            refuse = down and status is None
            if refuse == self._down:
                return
            self._down = refuse
        if refuse:
            self._stop_server()
        else:
            self._start_server()

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

    def add_integration(self, routing_key: str, service_id: str) -> str:
        """An Events API v2 integration on `service_id` (which must exist, with an
        escalation policy); events sent with `routing_key` open incidents there. Returns
        the integration's id."""
        with self._lock:
            service = self._state.services.get(service_id)
            if service is None:
                raise KeyError(f"unknown PagerDuty service {service_id!r}: add_service it first")
            if not service["escalation_policy"]["id"]:
                raise ValueError(f"service {service_id!r} has no escalation policy")
            integration = _Integration(_pd_id("P"), routing_key, service_id)
            self._state.integrations[routing_key] = integration
            return integration.id

    def force_status(
        self,
        n: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `n` requests (whose path starts with `path`, when given; REST or
        Events, ``/v2/enqueue``) with `status` and the API's error body, plus
        ``Retry-After`` when given."""
        with self._lock:
            self._state.forced.extend(_Forced(status, retry_after, path) for _ in range(n))

    def lose_answers(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        status: int = 502,
    ) -> None:
        """The next `n` REST requests (whose path starts with `path` and whose method is
        `method`, when given) are carried out, then answered `status` as a proxy losing
        the real answer would: the client cannot tell that its note (or change) was made."""
        with self._lock:
            self._state.lost.extend((path, method, status) for _ in range(n))

    # ------------------------------------------------------------------ a person in the UI

    def acknowledge(self, incident_id: str, user_id: str) -> None:
        """`user_id` acknowledges the incident in the web app (incident.acknowledged)."""
        with self._lock:
            incident, user = self._incident_or_raise(incident_id), self._user_or_raise(user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is resolved")
            self._acknowledge(incident, _user_reference(user), _UI_CLIENT)

    def resolve(self, incident_id: str, user_id: str) -> None:
        """`user_id` resolves the incident in the web app (incident.resolved)."""
        with self._lock:
            incident, user = self._incident_or_raise(incident_id), self._user_or_raise(user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is already resolved")
            self._resolve(incident, _user_reference(user), _UI_CLIENT)

    def escalate(self, incident_id: str, to_user_id: str, *, by_user_id: str | None = None) -> None:
        """The incident escalates to `to_user_id` (incident.escalated): it is assigned to
        them and triggered again (an acknowledgement does not survive an escalation). The
        agent is `by_user_id` when given (someone pressed "Escalate"), else the policy."""
        with self._lock:
            incident = self._incident_or_raise(incident_id)
            target = self._user_or_raise(to_user_id)
            if incident.status == "resolved":
                raise ValueError(f"incident {incident_id} is resolved")
            if by_user_id is not None:
                agent = _user_reference(self._user_or_raise(by_user_id))
            else:
                agent = self._policy_reference(incident.escalation_policy_id)
            now = _now()
            incident.assignees = [(target["id"], now)]
            if incident.status != "triggered":
                incident.status = "triggered"
                incident.acknowledgements.clear()
                incident.last_status_change_at, incident.last_status_change_by = now, agent
            self._log(incident, "escalate_log_entry", agent, f"Escalated to {target['name']}")
            self._emit_incident("incident.escalated", incident, agent, _UI_CLIENT)

    def reassign(self, incident_id: str, user_id: str, to_user_ids: list[str]) -> None:
        """`user_id` reassigns the incident to `to_user_ids` (incident.reassigned)."""
        with self._lock:
            incident, user = self._incident_or_raise(incident_id), self._user_or_raise(user_id)
            targets = [self._user_or_raise(u) for u in to_user_ids]
            now = _now()
            incident.assignees = [(t["id"], now) for t in targets]
            agent = _user_reference(user)
            names = ", ".join(t["name"] for t in targets)
            self._log(incident, "assign_log_entry", agent, f"Reassigned to {names}")
            self._emit_incident("incident.reassigned", incident, agent, _UI_CLIENT)

    def annotate(self, incident_id: str, user_id: str, content: str) -> dict[str, Any]:
        """`user_id` adds a note in the web app (incident.annotated); returns the note."""
        with self._lock:
            incident, user = self._incident_or_raise(incident_id), self._user_or_raise(user_id)
            return self._add_note(incident, user, content, _UI_CLIENT)

    # ------------------------------------------------------------------ webhooks, workflows

    def subscribe(
        self,
        url: str,
        secret: str,
        *,
        event_types: list[str] | tuple[str, ...] | frozenset[str] | None = None,
        verify: Verify = True,
        service_id: str | None = None,
        custom_headers: dict[str, str] | None = None,
    ) -> str:
        """A v3 webhook subscription delivering to `url`, signed with `secret`; returns its
        id. `event_types` None: every incident event; `service_id`: a service filter;
        `verify`: the CA (bundle path or SSLContext) for an https receiver."""
        types = frozenset(event_types) if event_types is not None else EMITTED_EVENT_TYPES
        unknown = sorted(types - WEBHOOK_EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown webhook event types {unknown}")
        with self._lock:
            sub = _Subscription(
                id=_pd_id("P"),
                url=url,
                secrets=[secret],
                event_types=types,
                verify=verify,
                service_id=service_id,
                custom_headers=dict(custom_headers or {}),
            )
            self._state.subscriptions[sub.id] = sub
            return sub.id

    def unsubscribe(self, subscription_id: str) -> None:
        with self._lock:
            self._state.subscriptions.pop(subscription_id, None)

    def rotate_secret(self, subscription_id: str, new_secret: str) -> None:
        """Start a rotation: deliveries carry two signatures, the new secret's first, until
        `finish_rotation`."""
        with self._lock:
            sub = self._subscription_or_raise(subscription_id)
            sub.secrets = [new_secret, sub.secrets[0]]

    def finish_rotation(self, subscription_id: str) -> None:
        """End a rotation: only the new secret signs."""
        with self._lock:
            sub = self._subscription_or_raise(subscription_id)
            sub.secrets = sub.secrets[:1]

    def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again exactly as it was (same body, headers and X-Webhook-Id), as
        PagerDuty's at-least-once delivery may; returns the new delivery."""
        with self._lock:
            original = next((d for d in self._state.deliveries if d.id == delivery_id), None)
            if original is None:
                raise KeyError(f"no delivery {delivery_id!r}")
            again = Delivery(
                id=original.id,
                kind=original.kind,
                url=original.url,
                headers=dict(original.headers),
                body=original.body,
                verify=original.verify,
                event_type=original.event_type,
                subscription_id=original.subscription_id,
                workflow=original.workflow,
                incident_id=original.incident_id,
                redelivery_of=original,
            )
            self._state.deliveries.append(again)
        self._sender.submit(again)
        return again

    def add_workflow(
        self,
        name: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | list[Any] | str | None = None,
        verify: Verify = True,
    ) -> None:
        """An Incident Workflow `name` with one "Send a Webhook POST" step to `url`.

        `headers` and `body` may hold field references (``{{incident.id}}``, see
        `WORKFLOW_VARIABLES`). A dict or list body has them replaced in its strings and is
        sent as JSON; a str body is sent as written with them replaced verbatim. Without
        `body`: `DEFAULT_WORKFLOW_BODY`."""
        template = DEFAULT_WORKFLOW_BODY if body is None else body
        used = _references(json.dumps(template)) | _references(json.dumps(headers or {}))
        unknown = sorted(used - set(WORKFLOW_VARIABLES))
        if unknown:
            raise ValueError(f"unknown field references {unknown}; known: {WORKFLOW_VARIABLES}")
        with self._lock:
            self._state.workflows[name] = _Workflow(
                name, url, dict(headers or {}), template, verify
            )

    def run_workflow(self, incident_id: str, name: str, user_id: str) -> Delivery:
        """`user_id` runs workflow `name` on the incident (the incident's "Run a workflow"
        menu): its POST is queued on the sender thread; returns the (pending) delivery."""
        with self._lock:
            workflow = self._state.workflows.get(name)
            if workflow is None:
                raise KeyError(f"no workflow {name!r}: add_workflow it first")
            incident, user = self._incident_or_raise(incident_id), self._user_or_raise(user_id)
            service = self._state.services[incident.service_id]
            values = {
                "workflow.name": workflow.name,
                "incident.id": incident.id,
                "incident.number": str(incident.number),
                "incident.title": incident.title,
                "incident.status": incident.status,
                "incident.urgency": incident.urgency,
                "incident.html_url": f"{WEB_HOST}/incidents/{incident.id}",
                "incident.incident_key": incident.incident_key,
                "incident.service.id": service["id"],
                "incident.service.summary": service["summary"],
                "current_user.id": user["id"],
                "current_user.email": user["email"],
                "current_user.name": user["name"],
            }
            if isinstance(workflow.body, str):
                body = _render(workflow.body, values).encode()
            else:
                rendered = _render_json(workflow.body, values)
                body = json.dumps(rendered, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {k: _render(v, values) for k, v in workflow.headers.items()}
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"

            delivery = Delivery(
                id=str(uuid.uuid4()),
                kind="workflow",
                url=workflow.url,
                headers=headers,
                body=body,
                verify=workflow.verify,
                workflow=workflow.name,
                incident_id=incident.id,
            )
            self._state.deliveries.append(delivery)
        self._sender.submit(delivery)
        return delivery

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

    def events(self) -> list[dict[str, Any]]:
        """Every Events API v2 body received (JSON objects only), invalid ones included."""
        with self._lock:
            return [json.loads(json.dumps(e)) for e in self._state.events]

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident, oldest first, as ``GET /incidents/{id}`` answers it."""
        with self._lock:
            return _deep_copy([self._rest_incident(i) for i in self._state.incidents.values()])

    def incident(self, incident_id: str) -> dict[str, Any]:
        with self._lock:
            return _deep_copy(self._rest_incident(self._incident_or_raise(incident_id)))

    def incident_by_key(self, incident_key: str) -> dict[str, Any] | None:
        """The newest incident with that key (open or not), None when there is none."""
        with self._lock:
            found = [i for i in self._state.incidents.values() if i.incident_key == incident_key]
            return _deep_copy(self._rest_incident(found[-1])) if found else None

    def alerts(self, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return _deep_copy(self._incident_or_raise(incident_id).alerts)

    def log_entries(self, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return _deep_copy(self._incident_or_raise(incident_id).log_entries)

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return _deep_copy(self._incident_or_raise(incident_id).notes)

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every v3 envelope emitted, with or without a subscription to deliver it."""
        with self._lock:
            return _deep_copy(self._state.webhook_events)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._state.deliveries)

    def wait_deliveries(
        self, n: int, *, event_type: str | None = None, timeout: float = 10.0
    ) -> list[Delivery]:
        """Wait until `n` deliveries (of `event_type`, when given) have settled (delivered,
        dropped, failed); returns them in order. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            settled = [
                d
                for d in self.deliveries()
                if d.done and (event_type is None or d.event_type == event_type)
            ]
            if len(settled) >= n:
                return settled
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(settled)} of {n} deliveries settled in {timeout} s")
            time.sleep(0.01)

    def drain(self, timeout: float = 10.0) -> list[Delivery]:
        """Wait until nothing is queued or in flight; returns every delivery."""
        if not self._sender.wait_idle(timeout):
            raise TimeoutError(f"webhook deliveries still pending after {timeout} s")
        return self.deliveries()

    def reset(self) -> None:
        """Forget everything (users, services, on-calls, integrations, incidents,
        subscriptions, workflows, forced statuses, requests, deliveries); bring it up.
        Deliveries still queued are cancelled."""
        self.set_down(False)
        self._sender.cancel_pending()
        with self._lock:
            self._state = _State()
            self._number = 0
            self.ignore_include = False

    # ------------------------------------------------------------------ HTTP

    def _app(self) -> Starlette:
        return Starlette(routes=[*self._events_routes(), *self._rest_routes()])

    def _events_routes(self) -> list[Route]:
        """Events API v2 (events.pagerduty.com): routing key in the body, its own errors."""
        return [Route(EVENTS_PATH, self._events_endpoint, methods=["POST"])]

    def _rest_routes(self) -> list[Route]:
        """REST API v2 (api.pagerduty.com): token auth, PagerDuty's error envelope."""
        return [
            Route("/oncalls", self._rest(self._list_oncalls), methods=["GET"]),
            Route("/users", self._rest(self._list_users), methods=["GET"]),
            Route("/users/{id}", self._rest(self._get_user), methods=["GET"]),
            Route("/services/{id}", self._rest(self._get_service), methods=["GET"]),
            Route("/incidents", self._rest(self._list_incidents), methods=["GET"]),
            Route("/incidents/{id}", self._rest(self._get_incident), methods=["GET"]),
            Route("/incidents/{id}", self._rest(self._put_incident), methods=["PUT"]),
            Route("/incidents/{id}/alerts", self._rest(self._list_alerts), methods=["GET"]),
            Route(
                "/incidents/{id}/log_entries",
                self._rest(self._list_log_entries),
                methods=["GET"],
            ),
            Route("/incidents/{id}/notes", self._rest(self._list_notes), methods=["GET"]),
            Route("/incidents/{id}/notes", self._rest(self._post_note), methods=["POST"]),
            Route(
                "/{path:path}",
                self._rest(self._not_found),
                methods=["GET", "POST", "PUT", "DELETE"],
            ),
        ]

    def _rest(self, handler: Handler) -> Handler:
        """Record, then down/forced statuses, then auth, then the handler; errors as
        PagerDuty."""

        async def endpoint(request: Request) -> Response:
            body = await request.body()
            try:
                response = self._forced_response(request, events=False) or self._auth_error(request)
                if response is None:
                    response = await handler(request)
                    response = self._lose(request, response)
            except _PdError as e:
                response = _error(e.status, errors=e.errors, message=e.message)
            self._record(request, body, response.status_code)
            return response

        return endpoint

    def _record(self, request: Request, body: bytes, status: int) -> None:
        with self._lock:
            self._state.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    query=list(request.query_params.multi_items()),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    status=status,
                    at=time.time(),
                    body=body,
                )
            )

    def _lose(self, request: Request, response: Response) -> Response:
        """`lose_answers`: the work is done, the answer replaced by a gateway error."""
        if response.status_code >= 400:
            return response
        with self._lock:
            for i, (path, method, status) in enumerate(self._state.lost):
                if (path is None or request.url.path.startswith(path)) and (
                    method is None or request.method == method
                ):
                    del self._state.lost[i]
                    return _error(status)
        return response

    def _forced_response(self, request: Request, *, events: bool) -> Response | None:
        error = _events_error if events else _error
        with self._lock:
            if self._state.down_status is not None:
                return error(self._state.down_status)
            for i, forced in enumerate(self._state.forced):
                if forced.path is None or request.url.path.startswith(forced.path):
                    del self._state.forced[i]
                    headers = {}
                    if forced.retry_after is not None:
                        headers["Retry-After"] = f"{forced.retry_after:g}"
                    return error(forced.status, headers=headers)
        return None

    def _auth_error(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        prefix = "Token token="
        given = auth[len(prefix) :] if auth.startswith(prefix) else ""
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        return _error(401)

    def _requester(self, request: Request) -> dict[str, Any]:
        """The user named by the ``From`` header a write needs (400 as PagerDuty otherwise)."""
        email = request.headers.get("from", "").strip()
        if not email:
            raise _PdError(400, message=FROM_MISSING)
        user = self._user_by_email(email)
        if user is None:
            raise _PdError(400, message=FROM_UNKNOWN)
        return user

    async def _not_found(self, request: Request) -> Response:
        raise _PdError(404)

    # ------------------------------------------------------------------ REST: people

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

    # ------------------------------------------------------------------ REST: incidents

    async def _list_incidents(self, request: Request) -> Response:
        q = request.query_params
        statuses = set(q.getlist("statuses[]"))
        bad = sorted(statuses - {"triggered", "acknowledged", "resolved"})
        if bad:
            raise _PdError(400, errors=[f"Statuses {bad} are not valid"])
        services = set(q.getlist("service_ids[]"))
        urgencies = set(q.getlist("urgencies[]"))
        key = q.get("incident_key")
        every_date = q.get("date_range") == "all"
        now = datetime.now(UTC)
        # PagerDuty's default window is the last month; date_range=all lifts it.
        since = None if every_date else (_time_param(q.get("since"), "since") or now - _MONTH)
        until = None if every_date else (_time_param(q.get("until"), "until") or now)
        with self._lock:
            found = [
                self._rest_incident(i)
                for i in self._state.incidents.values()
                if (not statuses or i.status in statuses)
                and (not services or i.service_id in services)
                and (not urgencies or i.urgency in urgencies)
                and (key is None or i.incident_key == key)
                and (since is None or i.created_at >= since)
                and (until is None or i.created_at <= until)
            ]
        return _page(request, "incidents", found)

    async def _get_incident(self, request: Request) -> Response:
        with self._lock:
            incident = self._incident_or_404(request)
            return JSONResponse({"incident": self._rest_incident(incident)})

    async def _put_incident(self, request: Request) -> Response:
        body = await _json_body(request)
        with self._lock:
            incident = self._incident_or_404(request)
            user = self._requester(request)
            wrapped = body.get("incident") if isinstance(body, dict) else None
            if not isinstance(wrapped, dict):
                raise _PdError(400, errors=["Incident is missing"])
            if wrapped.get("type") not in ("incident", "incident_reference"):
                raise _PdError(400, errors=["Type must be incident or incident_reference"])
            status = wrapped.get("status")
            if status not in (None, "acknowledged", "resolved"):
                raise _PdError(400, errors=["Status must be acknowledged or resolved"])
            agent = _user_reference(user)
            if status is not None and incident.status == "resolved":
                raise _PdError(400, errors=["Incident Already Resolved"])
            if status == "acknowledged" and incident.status == "triggered":
                self._acknowledge(incident, agent, None)
            elif status == "resolved":
                self._resolve(incident, agent, None)
            return JSONResponse({"incident": self._rest_incident(incident)})

    async def _list_alerts(self, request: Request) -> Response:
        with self._lock:
            alerts = _deep_copy(self._incident_or_404(request).alerts)
        return _page(request, "alerts", alerts)

    async def _list_log_entries(self, request: Request) -> Response:
        with self._lock:
            entries = _deep_copy(self._incident_or_404(request).log_entries)
        return _page(request, "log_entries", entries)

    async def _list_notes(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse({"notes": _deep_copy(self._incident_or_404(request).notes)})

    async def _post_note(self, request: Request) -> Response:
        body = await _json_body(request)
        with self._lock:
            incident = self._incident_or_404(request)
            user = self._requester(request)
            note = body.get("note") if isinstance(body, dict) else None
            content = note.get("content") if isinstance(note, dict) else None
            if not isinstance(content, str) or not content.strip():
                raise _PdError(400, errors=["Content can't be blank"])
            created = self._add_note(incident, user, content, None)
            return JSONResponse({"note": created}, status_code=201)

    # ------------------------------------------------------------------ Events API v2

    async def _events_endpoint(self, request: Request) -> Response:
        raw = await request.body()
        response = self._forced_response(request, events=True)
        if response is None:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with self._lock:
                if isinstance(body, dict):
                    self._state.events.append(body)
                try:
                    dedup_key = self._apply_event(body)
                except _InvalidEvent as e:
                    response = JSONResponse(
                        {
                            "status": "invalid event",
                            "message": "Event object is invalid",
                            "errors": e.errors,
                        },
                        status_code=400,
                    )
                else:
                    response = JSONResponse(
                        {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
                        status_code=202,
                    )
        self._record(request, raw, response.status_code)
        return response

    def _apply_event(self, body: Any) -> str:
        """Validate an event like PagerDuty, then apply it; returns its dedup key."""
        if not isinstance(body, dict):
            raise _InvalidEvent(["Event object must be a JSON object"])
        errors: list[str] = []
        routing_key = body.get("routing_key")
        integration = None
        if not isinstance(routing_key, str) or not routing_key:
            errors.append("'routing_key' is missing or blank")
        else:
            integration = self._state.integrations.get(routing_key)
            if integration is None:
                errors.append("Invalid routing key")
        action = body.get("event_action")
        if not action:
            errors.append("'event_action' is missing or blank")
        elif action not in EVENT_ACTIONS:
            errors.append(
                "'event_action' is invalid (must be one of trigger, acknowledge, resolve)"
            )
        dedup_key = body.get("dedup_key")
        if dedup_key is not None and not isinstance(dedup_key, str):
            errors.append("'dedup_key' must be a string")
        elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY:
            errors.append(f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY} characters)")
        elif action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is missing or blank")
        if action == "trigger":
            errors.extend(_payload_errors(body.get("payload")))
        if errors:
            raise _InvalidEvent(errors)
        assert integration is not None and isinstance(action, str)
        if action == "trigger":
            key = dedup_key or uuid.uuid4().hex
            self._trigger(integration, key, body)
            return key
        assert isinstance(dedup_key, str)
        incident = self._open_incident(integration, dedup_key)
        if incident is not None:  # unknown or resolved keys are dropped
            agent = _integration_reference(integration)
            client = _event_client(body)
            if action == "acknowledge":
                if incident.status == "triggered":
                    self._acknowledge(incident, agent, client)
                else:
                    self._log(incident, "acknowledge_log_entry", agent, "Acknowledged again")
            else:
                self._resolve(incident, agent, client)
        return dedup_key

    def _open_incident(self, integration: _Integration, dedup_key: str) -> _Incident | None:
        incident_id = self._state.open_alerts.get((integration.id, dedup_key))
        return self._state.incidents.get(incident_id) if incident_id else None

    def _trigger(self, integration: _Integration, dedup_key: str, body: dict[str, Any]) -> None:
        payload: dict[str, Any] = body["payload"]
        agent = _integration_reference(integration)
        existing = self._open_incident(integration, dedup_key)
        if existing is not None:
            # "a trigger log entry is created on an existing alert": no new alert or incident
            self._log(existing, "trigger_log_entry", agent, payload["summary"], event=body)
            return
        service = self._state.services[integration.service_id]
        policy_id = service["escalation_policy"]["id"]
        now = _now()
        self._number += 1
        incident = _Incident(
            id=_pd_id("Q", 13),
            number=self._number,
            incident_key=dedup_key,
            title=payload["summary"],
            urgency="high" if payload["severity"] in ("critical", "error") else "low",
            service_id=service["id"],
            escalation_policy_id=policy_id,
            integration_id=integration.id,
            created_at=now,
            assignees=[(u, now) for u in self._first_level_oncall(policy_id, now)],
            last_status_change_at=now,
            last_status_change_by=agent,
        )
        incident.alerts.append(_alert(incident, integration, service, dedup_key, body, now))
        self._state.incidents[incident.id] = incident
        self._state.open_alerts[(integration.id, dedup_key)] = incident.id
        self._log(incident, "trigger_log_entry", agent, payload["summary"], event=body)
        self._emit_incident("incident.triggered", incident, agent, _event_client(body))

    def _first_level_oncall(self, policy_id: str, now: datetime) -> list[str]:
        entries = [
            o
            for o in self._state.oncalls
            if o.escalation_policy_id == policy_id
            and (o.start is None or o.start <= now)
            and (o.end is None or o.end >= now)
        ]
        if not entries:
            return []
        level = min(o.level for o in entries)
        return [o.user_id for o in entries if o.level == level]

    # ------------------------------------------------------------------ state changes

    def _acknowledge(
        self, incident: _Incident, agent: dict[str, Any], client: dict[str, Any] | None
    ) -> None:
        now = _now()
        incident.status = "acknowledged"
        incident.acknowledgements.append((agent, now))
        incident.last_status_change_at, incident.last_status_change_by = now, agent
        self._log(incident, "acknowledge_log_entry", agent, "Acknowledged")
        self._emit_incident("incident.acknowledged", incident, agent, client)

    def _resolve(
        self, incident: _Incident, agent: dict[str, Any], client: dict[str, Any] | None
    ) -> None:
        now = _now()
        incident.status = "resolved"
        incident.acknowledgements.clear()
        incident.last_status_change_at, incident.last_status_change_by = now, agent
        for alert in incident.alerts:
            alert["status"] = "resolved"
            alert["resolved_at"] = _iso_s(now)
        for k, incident_id in list(self._state.open_alerts.items()):
            if incident_id == incident.id:
                del self._state.open_alerts[k]
        self._log(incident, "resolve_log_entry", agent, "Resolved")
        self._emit_incident("incident.resolved", incident, agent, client)

    def _add_note(
        self,
        incident: _Incident,
        user: dict[str, Any],
        content: str,
        client: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = _now()
        note = {
            "id": _pd_id("P"),
            "user": _user_reference(user),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": _iso_s(now),
        }
        incident.notes.append(note)
        agent = _user_reference(user)
        self._log(incident, "annotate_log_entry", agent, content)
        data = {
            "incident": self._incident_reference(incident),
            "id": note["id"],
            "content": content,
            "trimmed": False,
            "type": "incident_note",
        }
        self._emit("incident.annotated", "incident", data, incident, agent, client)
        return _deep_copy(note)

    def _log(
        self,
        incident: _Incident,
        kind: str,
        agent: dict[str, Any],
        summary: str,
        *,
        event: dict[str, Any] | None = None,
    ) -> None:
        entry_id = _pd_id("R", 25)
        entry: dict[str, Any] = {
            "id": entry_id,
            "type": kind,
            "summary": summary,
            "self": f"{API_HOST}/log_entries/{entry_id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}/log_entries/{entry_id}",
            "created_at": _iso_s(_now()),
            "agent": agent,
            "channel": {"type": "api" if event is not None else "website"},
            "incident": self._incident_reference(incident),
            "service": _service_reference(self._state.services[incident.service_id]),
        }
        if event is not None:
            payload = event.get("payload") or {}
            entry["channel"].update(
                {
                    "summary": payload.get("summary"),
                    "details": payload.get("custom_details"),
                    "client": event.get("client"),
                    "client_url": event.get("client_url"),
                }
            )
        incident.log_entries.append(entry)

    def _emit_incident(
        self,
        event_type: str,
        incident: _Incident,
        agent: dict[str, Any],
        client: dict[str, Any] | None,
    ) -> None:
        data = self._webhook_incident(incident)
        self._emit(event_type, "incident", data, incident, agent, client)

    def _emit(
        self,
        event_type: str,
        resource_type: str,
        data: dict[str, Any],
        incident: _Incident,
        agent: dict[str, Any] | None,
        client: dict[str, Any] | None,
    ) -> None:
        """Build the v3 envelope and queue one signed delivery per matching subscription
        (called with the lock held, so deliveries queue in the order things happened)."""
        envelope = {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "resource_type": resource_type,
                "occurred_at": _iso_ms(_now()),
                "agent": agent,
                "client": client,
                "data": data,
            }
        }
        self._state.webhook_events.append(envelope)
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        for sub in self._state.subscriptions.values():
            if event_type not in sub.event_types:
                continue
            if sub.service_id is not None and sub.service_id != incident.service_id:
                continue
            delivery_id = str(uuid.uuid4())
            headers = {
                **sub.custom_headers,
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": WEBHOOK_USER_AGENT,
                "X-PagerDuty-Signature": sign(body, sub.secrets),
                "X-Webhook-Id": delivery_id,
                "X-Webhook-Subscription": sub.id,
            }
            delivery = Delivery(
                id=delivery_id,
                kind="webhook",
                url=sub.url,
                headers=headers,
                body=body,
                verify=sub.verify,
                event_type=event_type,
                subscription_id=sub.id,
                incident_id=incident.id,
            )
            self._state.deliveries.append(delivery)
            self._sender.submit(delivery)

    # ------------------------------------------------------------------ shapes with state

    def _rest_incident(self, incident: _Incident) -> dict[str, Any]:
        """REST v2 ``incident`` (GET /incidents/{id})."""
        service = self._state.services[incident.service_id]
        triggered = sum(1 for a in incident.alerts if a["status"] == "triggered")
        first_log = incident.log_entries[0] if incident.log_entries else None
        return {
            "id": incident.id,
            "type": "incident",
            "summary": f"[#{incident.number}] {incident.title}",
            "self": f"{API_HOST}/incidents/{incident.id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}",
            "number": incident.number,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "created_at": _iso_s(incident.created_at),
            "updated_at": _iso_s(incident.last_status_change_at or incident.created_at),
            "reopened_at": None,
            "title": incident.title,
            "description": incident.title,
            "incident_type": {"name": "incident_default"},
            "service": _service_reference(service),
            "assignments": [
                {"at": _iso_s(at), "assignee": _user_reference(self._state.users[uid])}
                for uid, at in incident.assignees
            ],
            "acknowledgements": [
                {"at": _iso_s(at), "acknowledger": agent} for agent, at in incident.acknowledgements
            ],
            "last_status_change_at": _iso_s(incident.last_status_change_at or incident.created_at),
            "last_status_change_by": incident.last_status_change_by,
            "first_trigger_log_entry": (
                {
                    "id": first_log["id"],
                    "type": "trigger_log_entry_reference",
                    "summary": first_log["summary"],
                    "self": first_log["self"],
                    "html_url": first_log["html_url"],
                }
                if first_log
                else None
            ),
            "alert_counts": {
                "all": len(incident.alerts),
                "triggered": triggered,
                "resolved": len(incident.alerts) - triggered,
            },
            "escalation_policy": self._policy_reference(incident.escalation_policy_id),
            "teams": [],
            "priority": None,
            "urgency": incident.urgency,
            "conference_bridge": None,
            "resolve_reason": None,
            "pending_actions": [],
            "is_mergeable": True,
        }

    def _webhook_incident(self, incident: _Incident) -> dict[str, Any]:
        """v3 webhook ``incident`` data type: exactly the documented keys."""
        service = self._state.services[incident.service_id]
        return {
            "id": incident.id,
            "type": "incident",
            "self": f"{API_HOST}/incidents/{incident.id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}",
            "number": incident.number,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "created_at": _iso_s(incident.created_at),
            "reopened_at": None,
            "title": incident.title,
            "incident_type": {"name": "incident_default"},
            "service": _service_reference(service),
            "assignees": [_user_reference(self._state.users[u]) for u, _ in incident.assignees],
            "escalation_policy": self._policy_reference(incident.escalation_policy_id),
            "teams": [],
            "priority": None,
            "urgency": incident.urgency,
            "conference_bridge": None,
            "resolve_reason": None,
        }

    def _incident_reference(self, incident: _Incident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "type": "incident_reference",
            "summary": incident.title,
            "self": f"{API_HOST}/incidents/{incident.id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}",
        }

    def _policy_reference(self, policy_id: str) -> dict[str, Any]:
        return _reference(
            "escalation_policy", policy_id, self._state.policies.get(policy_id, policy_id)
        )

    # ------------------------------------------------------------------ lookups

    def _incident_or_raise(self, incident_id: str) -> _Incident:
        incident = self._state.incidents.get(incident_id)
        if incident is None:
            raise KeyError(f"no incident {incident_id!r}")
        return incident

    def _incident_or_404(self, request: Request) -> _Incident:
        incident = self._state.incidents.get(request.path_params["id"])
        if incident is None:
            raise _PdError(404)
        return incident

    def _user_or_raise(self, user_id: str) -> dict[str, Any]:
        user = self._state.users.get(user_id)
        if user is None:
            raise KeyError(f"unknown PagerDuty user {user_id!r}: add_user it first")
        return user

    def _user_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        return next((u for u in self._state.users.values() if u["email"].lower() == wanted), None)

    def _subscription_or_raise(self, subscription_id: str) -> _Subscription:
        sub = self._state.subscriptions.get(subscription_id)
        if sub is None:
            raise KeyError(f"no webhook subscription {subscription_id!r}")
        return sub


# ---------------------------------------------------------------------- signatures


def signature(body: bytes, secret: str) -> str:
    """``v1=<hex HMAC-SHA256>`` of the raw body with one secret."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets_: list[str]) -> str:
    """The ``X-PagerDuty-Signature`` value: one signature per secret, comma-separated."""
    return ",".join(signature(body, s) for s in secrets_)


# ---------------------------------------------------------------------- shapes

_MONTH = timedelta(days=31)


def _error(
    status: int,
    *,
    errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
    message: tuple[str, int] | None = None,
) -> Response:
    text, code = message or ERRORS.get(status, ("Error", 2000))
    error: dict[str, Any] = {"message": text, "code": code}
    if errors:
        error["errors"] = errors
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _events_error(status: int, *, headers: dict[str, str] | None = None) -> Response:
    """The Events API's own error bodies (not the REST envelope)."""
    body: dict[str, Any]
    if status == 429:
        body = {
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly. Please retry later.",
        }
    elif status == 400:
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": []}
    else:
        body = {"status": "error", "message": ERRORS.get(status, ("Error", 0))[0]}
    return JSONResponse(body, status_code=status, headers=headers)


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or blank"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    severity = payload.get("severity")
    if not severity:
        errors.append("'payload.severity' is missing or blank")
    elif severity not in SEVERITIES:
        errors.append(
            "'payload.severity' is invalid (must be one of critical, error, warning, info)"
        )
    return errors


def _alert(
    incident: _Incident,
    integration: _Integration,
    service: dict[str, Any],
    dedup_key: str,
    event: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The alert a trigger opens, its body keeping the event (REST ``alert`` shape)."""
    payload: dict[str, Any] = event["payload"]
    links = [x for x in event.get("links") or [] if isinstance(x, dict)]
    images = [x for x in event.get("images") or [] if isinstance(x, dict)]
    contexts = [{"type": "link", **link} for link in links] + [
        {"type": "image", **image} for image in images
    ]
    alert_id = _pd_id("Q", 13)
    return {
        "id": alert_id,
        "type": "alert",
        "summary": payload["summary"],
        "self": f"{API_HOST}/alerts/{alert_id}",
        "html_url": f"{WEB_HOST}/alerts/{alert_id}",
        "created_at": _iso_s(now),
        "status": "triggered",
        "resolved_at": None,
        "alert_key": dedup_key,
        "severity": payload["severity"],
        "suppressed": False,
        "service": _service_reference(service),
        "incident": {
            "id": incident.id,
            "type": "incident_reference",
            "summary": incident.title,
            "self": f"{API_HOST}/incidents/{incident.id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}",
        },
        "integration": _integration_reference(integration),
        "body": {
            "type": "alert_body",
            "contexts": contexts,
            "details": payload.get("custom_details"),
            "cef_details": {
                "client": event.get("client"),
                "client_url": event.get("client_url"),
                "contexts": contexts,
                "creation_time": payload.get("timestamp") or _iso_s(now),
                "dedup_key": dedup_key,
                "details": payload.get("custom_details"),
                "event_class": payload.get("class"),
                "message": payload["summary"],
                "priority": None,
                "reporter_component": None,
                "reporter_location": None,
                "service_group": payload.get("group"),
                "severity": payload["severity"],
                "source_component": payload.get("component"),
                "source_location": payload["source"],
                "source_origin": payload["source"],
                "version": "1.0",
            },
        },
    }


def _event_client(event: dict[str, Any]) -> dict[str, Any] | None:
    """A webhook's ``client`` for a change the Events API made: the event's client, if any."""
    name = event.get("client")
    if not isinstance(name, str) or not name:
        return None
    client: dict[str, Any] = {"name": name}
    if isinstance(event.get("client_url"), str):
        client["url"] = event["client_url"]
    return client


def _integration_reference(integration: _Integration) -> dict[str, Any]:
    where = f"services/{integration.service_id}/integrations/{integration.id}"
    return {
        "id": integration.id,
        "type": "events_api_v2_inbound_integration_reference",
        "summary": "Events API V2",
        "self": f"{API_HOST}/{where}",
        "html_url": f"{WEB_HOST}/{where}",
    }


def _service_reference(service: dict[str, Any]) -> dict[str, Any]:
    return _reference("service", service["id"], service["summary"])


def _render(template: str, values: dict[str, str]) -> str:
    return _FIELD_REFERENCE.sub(lambda m: values.get(m.group(1), ""), template)


def _render_json(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        return _render(template, values)
    if isinstance(template, dict):
        return {_render(k, values): _render_json(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_render_json(v, values) for v in template]
    return template


def _references(text: str) -> set[str]:
    return set(_FIELD_REFERENCE.findall(text))


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise _PdError(400, errors=["Invalid JSON"]) from None


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
    plural = {
        "escalation_policy": "escalation_policies",
        "schedule": "schedules",
        "service": "services",
    }[kind]
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


def _deep_copy(value: _T) -> _T:
    copied: _T = json.loads(json.dumps(value))
    return copied


def _pd_id(prefix: str, length: int = 6) -> str:
    """An id in PagerDuty's style: ``P`` + 6 upper-case letters and digits (``PGR0VU2``)."""
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _iso_s(value: datetime) -> str:
    """``2020-04-09T15:16:27Z``, as incidents carry it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(value: datetime) -> str:
    """``2020-10-02T18:45:22.169Z``, as webhook events carry ``occurred_at``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


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
