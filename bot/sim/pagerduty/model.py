"""The PagerDuty account the sim keeps (users, policies, on-calls, services, integrations,
incidents, subscriptions, workflows, what was received and sent), and the small shapes every
part of the sim renders the same way: ids, timestamps, ``*_reference`` objects.

Plain data, no HTTP and no locking: `Account` (account.py) owns one `State` and its lock.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.sim._server import RecordedRequest
from bot.sim.pagerduty.webhooks import Delivery, Subscription, Verify

__all__ = [
    "API_HOST",
    "DEFAULT_TOKEN",
    "ERRORS",
    "SUBDOMAIN",
    "WEB_HOST",
    "Forced",
    "Incident",
    "Integration",
    "OnCall",
    "State",
    "Workflow",
    "deep_copy",
    "incident_reference",
    "integration_reference",
    "iso",
    "iso_ms",
    "iso_s",
    "now",
    "pd_id",
    "reference",
    "service_reference",
    "shallow_copy",
    "user_reference",
]

SUBDOMAIN = "payments"
API_HOST = "https://api.pagerduty.com"  # what `self` links point at, as in real answers
WEB_HOST = f"https://{SUBDOMAIN}.pagerduty.com"
DEFAULT_TOKEN = "u+sim-pagerduty-token"  # the REST API token accepted unless another is given

# PagerDuty's error codes (https://developer.pagerduty.com/docs/rest-api-v2/errors/); the
# Events API answers with its own bodies but the same messages.
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

_T = TypeVar("_T")


@dataclass(slots=True)
class OnCall:
    escalation_policy_id: str
    user_id: str
    level: int
    schedule_id: str | None
    start: datetime | None  # None: permanent (direct user target)
    end: datetime | None

    def start_key(self) -> datetime:
        """`start` for sorting: a permanent on-call starts first."""
        return self.start or datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class Forced:
    status: int
    retry_after: float | None
    path: str | None  # only requests whose path starts with this; None: any


@dataclass(slots=True)
class Integration:
    id: str
    routing_key: str
    service_id: str


@dataclass(slots=True)
class Incident:
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
class Workflow:
    """An Incident Workflow with one "Send a Webhook POST" step (workflows.py renders it)."""

    name: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | list[Any] | str
    verify: Verify


@dataclass(slots=True)
class State:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)  # id -> name
    schedules: dict[str, str] = field(default_factory=dict)
    oncalls: list[OnCall] = field(default_factory=list)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced: list[Forced] = field(default_factory=list)
    lost: list[tuple[str | None, str | None, int]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    integrations: dict[str, Integration] = field(default_factory=dict)  # by routing key
    incidents: dict[str, Incident] = field(default_factory=dict)  # in creation order
    open_alerts: dict[tuple[str, str], str] = field(default_factory=dict)  # → incident id
    events: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    webhook_events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    down_status: int | None = None
    number: int = 0  # the last incident number given


# ---------------------------------------------------------------------- references


def reference(kind: str, id: str, summary: str) -> dict[str, Any]:
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


def user_reference(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "type": "user_reference",
        "summary": user["summary"],
        "self": user["self"],
        "html_url": user["html_url"],
    }


def service_reference(service: dict[str, Any]) -> dict[str, Any]:
    return reference("service", service["id"], service["summary"])


def incident_reference(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "type": "incident_reference",
        "summary": incident.title,
        "self": f"{API_HOST}/incidents/{incident.id}",
        "html_url": f"{WEB_HOST}/incidents/{incident.id}",
    }


def integration_reference(integration: Integration) -> dict[str, Any]:
    where = f"services/{integration.service_id}/integrations/{integration.id}"
    return {
        "id": integration.id,
        "type": "events_api_v2_inbound_integration_reference",
        "summary": "Events API V2",
        "self": f"{API_HOST}/{where}",
        "html_url": f"{WEB_HOST}/{where}",
    }


# ---------------------------------------------------------------------- ids, times, copies


def pd_id(prefix: str, length: int = 6) -> str:
    """An id in PagerDuty's style: ``P`` + 6 upper-case letters and digits (``PGR0VU2``)."""
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def iso_s(value: datetime) -> str:
    """``2020-04-09T15:16:27Z``, as incidents carry it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(value: datetime) -> str:
    """``2020-10-02T18:45:22.169Z``, as webhook events carry ``occurred_at``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def shallow_copy(value: dict[str, Any]) -> dict[str, Any]:
    """A copy one level deep (lists copied too): enough for the seeded users and services."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in value.items()}


def deep_copy(value: _T) -> _T:
    copied: _T = json.loads(json.dumps(value))
    return copied
