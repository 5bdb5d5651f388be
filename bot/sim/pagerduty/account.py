"""The account both APIs serve: one `State` under one lock, the webhook sender, and what
happens to an incident whoever does it (the REST API, the Events API, a person in the web
app): acknowledge, resolve, annotate, log, emit the v3 webhook.

Also the shapes that need the state (the REST ``incident``, the webhook ``incident`` data)
and the bookkeeping every request goes through (recording it, forced and lost answers).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bot.sim._server import RecordedRequest
from bot.sim.pagerduty.model import (
    API_HOST,
    WEB_HOST,
    Incident,
    Integration,
    State,
    deep_copy,
    incident_reference,
    iso_ms,
    iso_s,
    now,
    pd_id,
    reference,
    service_reference,
    user_reference,
)
from bot.sim.pagerduty.webhooks import Sender, Subscription, deliveries_for, envelope

__all__ = ["Account", "parse_body"]


class Account:
    """The sim's state and the changes every API makes to it. Callers hold `lock` around
    anything that reads or changes `state` (it is reentrant)."""

    def __init__(self, *, token: str, sender: Sender) -> None:
        self.token = token
        self.sender = sender
        self.lock = threading.RLock()
        self.state = State()
        self.ignore_include = False  # answer bare references whatever include[] asks

    def reset(self) -> None:
        with self.lock:
            self.state = State()
            self.ignore_include = False

    # ------------------------------------------------------------------ lookups

    def incident_or_raise(self, incident_id: str) -> Incident:
        incident = self.state.incidents.get(incident_id)
        if incident is None:
            raise KeyError(f"no incident {incident_id!r}")
        return incident

    def user_or_raise(self, user_id: str) -> dict[str, Any]:
        user = self.state.users.get(user_id)
        if user is None:
            raise KeyError(f"unknown PagerDuty user {user_id!r}: add_user it first")
        return user

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        return next((u for u in self.state.users.values() if u["email"].lower() == wanted), None)

    def subscription_or_raise(self, subscription_id: str) -> Subscription:
        sub = self.state.subscriptions.get(subscription_id)
        if sub is None:
            raise KeyError(f"no webhook subscription {subscription_id!r}")
        return sub

    def open_incident(self, integration: Integration, dedup_key: str) -> Incident | None:
        """The incident of the integration's open alert for `dedup_key`, if any."""
        incident_id = self.state.open_alerts.get((integration.id, dedup_key))
        return self.state.incidents.get(incident_id) if incident_id else None

    def first_level_oncall(self, policy_id: str, at: datetime) -> list[str]:
        """Who is on call at `at` on the policy's first level that has anyone."""
        entries = [
            o
            for o in self.state.oncalls
            if o.escalation_policy_id == policy_id
            and (o.start is None or o.start <= at)
            and (o.end is None or o.end >= at)
        ]
        if not entries:
            return []
        level = min(o.level for o in entries)
        return [o.user_id for o in entries if o.level == level]

    # ------------------------------------------------------------------ every request

    def record(self, request: Request, raw: bytes, response: Response, *, at: float) -> None:
        """Keep a request as received (refused ones too) and what it was answered."""
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=list(request.query_params.multi_items()),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=parse_body(raw),
            raw=raw,
            at=at,
            status=response.status_code,
            response_headers={k.lower(): v for k, v in response.headers.items()},
            response=parse_body(bytes(response.body)),
        )
        with self.lock:
            self.state.requests.append(recorded)

    def take_forced(self, path: str) -> tuple[int, dict[str, str]] | None:
        """The status (and headers) the next request to `path` must be answered with
        instead, by `set_down(status=)` or `force_status`; None: answer normally."""
        with self.lock:
            if self.state.down_status is not None:
                return self.state.down_status, {}
            for i, forced in enumerate(self.state.forced):
                if forced.path is None or path.startswith(forced.path):
                    del self.state.forced[i]
                    headers = {}
                    if forced.retry_after is not None:
                        headers["Retry-After"] = f"{forced.retry_after:g}"
                    return forced.status, headers
        return None

    def take_lost(self, path: str, method: str) -> int | None:
        """`lose_answers`: the status replacing the answer to this (done) request, if any."""
        with self.lock:
            for i, (lost_path, lost_method, status) in enumerate(self.state.lost):
                if (lost_path is None or path.startswith(lost_path)) and (
                    lost_method is None or method == lost_method
                ):
                    del self.state.lost[i]
                    return status
        return None

    # ------------------------------------------------------------------ state changes

    def acknowledge(
        self, incident: Incident, agent: dict[str, Any], client: dict[str, Any] | None
    ) -> None:
        at = now()
        incident.status = "acknowledged"
        incident.acknowledgements.append((agent, at))
        incident.last_status_change_at, incident.last_status_change_by = at, agent
        self.log(incident, "acknowledge_log_entry", agent, "Acknowledged")
        self.emit_incident("incident.acknowledged", incident, agent, client)

    def resolve(
        self, incident: Incident, agent: dict[str, Any], client: dict[str, Any] | None
    ) -> None:
        at = now()
        incident.status = "resolved"
        incident.acknowledgements.clear()
        incident.last_status_change_at, incident.last_status_change_by = at, agent
        for alert in incident.alerts:
            alert["status"] = "resolved"
            alert["resolved_at"] = iso_s(at)
        for k, incident_id in list(self.state.open_alerts.items()):
            if incident_id == incident.id:
                del self.state.open_alerts[k]
        self.log(incident, "resolve_log_entry", agent, "Resolved")
        self.emit_incident("incident.resolved", incident, agent, client)

    def add_note(
        self,
        incident: Incident,
        user: dict[str, Any],
        content: str,
        client: dict[str, Any] | None,
    ) -> dict[str, Any]:
        note = {
            "id": pd_id("P"),
            "user": user_reference(user),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": iso_s(now()),
        }
        incident.notes.append(note)
        agent = user_reference(user)
        self.log(incident, "annotate_log_entry", agent, content)
        data = {
            "incident": incident_reference(incident),
            "id": note["id"],
            "content": content,
            "trimmed": False,
            "type": "incident_note",
        }
        self.emit("incident.annotated", "incident", data, incident, agent, client)
        return deep_copy(note)

    def log(
        self,
        incident: Incident,
        kind: str,
        agent: dict[str, Any],
        summary: str,
        *,
        event: dict[str, Any] | None = None,
    ) -> None:
        """Append a log entry (`event`: the Events API event that made it)."""
        entry_id = pd_id("R", 25)
        entry: dict[str, Any] = {
            "id": entry_id,
            "type": kind,
            "summary": summary,
            "self": f"{API_HOST}/log_entries/{entry_id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}/log_entries/{entry_id}",
            "created_at": iso_s(now()),
            "agent": agent,
            "channel": {"type": "api" if event is not None else "website"},
            "incident": incident_reference(incident),
            "service": service_reference(self.state.services[incident.service_id]),
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

    def emit_incident(
        self,
        event_type: str,
        incident: Incident,
        agent: dict[str, Any],
        client: dict[str, Any] | None,
    ) -> None:
        data = self.webhook_incident(incident)
        self.emit(event_type, "incident", data, incident, agent, client)

    def emit(
        self,
        event_type: str,
        resource_type: str,
        data: dict[str, Any],
        incident: Incident,
        agent: dict[str, Any] | None,
        client: dict[str, Any] | None,
    ) -> None:
        """Build the v3 envelope and queue one signed delivery per matching subscription
        (called with the lock held, so deliveries queue in the order things happened)."""
        event = envelope(
            event_type, resource_type, data, occurred_at=iso_ms(now()), agent=agent, client=client
        )
        self.state.webhook_events.append(event)
        subscriptions = self.state.subscriptions.values()
        for delivery in deliveries_for(
            event, subscriptions, service_id=incident.service_id, incident_id=incident.id
        ):
            self.state.deliveries.append(delivery)
            self.sender.submit(delivery)

    # ------------------------------------------------------------------ shapes with state

    def rest_incident(self, incident: Incident) -> dict[str, Any]:
        """REST v2 ``incident`` (GET /incidents/{id})."""
        service = self.state.services[incident.service_id]
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
            "created_at": iso_s(incident.created_at),
            "updated_at": iso_s(incident.last_status_change_at or incident.created_at),
            "reopened_at": None,
            "title": incident.title,
            "description": incident.title,
            "incident_type": {"name": "incident_default"},
            "service": service_reference(service),
            "assignments": [
                {"at": iso_s(at), "assignee": user_reference(self.state.users[uid])}
                for uid, at in incident.assignees
            ],
            "acknowledgements": [
                {"at": iso_s(at), "acknowledger": agent} for agent, at in incident.acknowledgements
            ],
            "last_status_change_at": iso_s(incident.last_status_change_at or incident.created_at),
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
            "escalation_policy": self.policy_reference(incident.escalation_policy_id),
            "teams": [],
            "priority": None,
            "urgency": incident.urgency,
            "conference_bridge": None,
            "resolve_reason": None,
            "pending_actions": [],
            "is_mergeable": True,
        }

    def webhook_incident(self, incident: Incident) -> dict[str, Any]:
        """v3 webhook ``incident`` data type: exactly the documented keys."""
        service = self.state.services[incident.service_id]
        return {
            "id": incident.id,
            "type": "incident",
            "self": f"{API_HOST}/incidents/{incident.id}",
            "html_url": f"{WEB_HOST}/incidents/{incident.id}",
            "number": incident.number,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "created_at": iso_s(incident.created_at),
            "reopened_at": None,
            "title": incident.title,
            "incident_type": {"name": "incident_default"},
            "service": service_reference(service),
            "assignees": [user_reference(self.state.users[u]) for u, _ in incident.assignees],
            "escalation_policy": self.policy_reference(incident.escalation_policy_id),
            "teams": [],
            "priority": None,
            "urgency": incident.urgency,
            "conference_bridge": None,
            "resolve_reason": None,
        }

    def policy_reference(self, policy_id: str) -> dict[str, Any]:
        return reference(
            "escalation_policy", policy_id, self.state.policies.get(policy_id, policy_id)
        )


def parse_body(raw: bytes) -> Any:
    """A body as `RecordedRequest` keeps it: parsed JSON, else the text, None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
