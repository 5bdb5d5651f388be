"""PagerDuty's Events API v2 (events.pagerduty.com): ``POST /v2/enqueue``, how an alert opens,
updates and closes an incident.

No token: the integration's ``routing_key`` is in the body. Invalid events → 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": […]}``
(unknown routing key: "Invalid routing key"); otherwise 202 ``{"status": "success",
"message": "Event processed", "dedup_key": …}``, the key generated (a UUID's hex) when a
trigger has none. Semantics, per integration and dedup key:

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

The webhooks these changes emit name the integration as their ``agent`` (an
``events_api_v2_inbound_integration_reference``, a sim choice).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sim.pagerduty.account import Account
from bot.sim.pagerduty.model import (
    API_HOST,
    ERRORS,
    WEB_HOST,
    Incident,
    Integration,
    incident_reference,
    integration_reference,
    iso_s,
    now,
    pd_id,
    service_reference,
)

__all__ = [
    "EVENTS_PATH",
    "EVENT_ACTIONS",
    "MAX_DEDUP_KEY",
    "MAX_SUMMARY",
    "SEVERITIES",
    "EventsApi",
    "InvalidEvent",
    "events_error",
]

EVENTS_PATH = "/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255


class InvalidEvent(Exception):
    """An event PagerDuty would refuse: answered 400 naming every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors)
        self.errors = errors


class EventsApi:
    """The Events API's route over an account."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def routes(self) -> list[Route]:
        """Events API v2 (events.pagerduty.com): routing key in the body, its own errors."""
        return [Route(EVENTS_PATH, self._endpoint, methods=["POST"])]

    async def _endpoint(self, request: Request) -> Response:
        at = time.time()
        raw = await request.body()
        response: Response
        forced = self.account.take_forced(request.url.path)
        if forced is not None:
            status, headers = forced
            response = events_error(status, headers=headers)
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with self.account.lock:
                if isinstance(body, dict):
                    self.account.state.events.append(body)
                try:
                    dedup_key = self._apply_event(body)
                except InvalidEvent as e:
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
        self.account.record(request, raw, response, at=at)
        return response

    def _apply_event(self, body: Any) -> str:
        """Validate an event like PagerDuty, then apply it; returns its dedup key (call
        with the account's lock held)."""
        if not isinstance(body, dict):
            raise InvalidEvent(["Event object must be a JSON object"])
        errors: list[str] = []
        routing_key = body.get("routing_key")
        integration = None
        if not isinstance(routing_key, str) or not routing_key:
            errors.append("'routing_key' is missing or blank")
        else:
            integration = self.account.state.integrations.get(routing_key)
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
            raise InvalidEvent(errors)
        assert integration is not None and isinstance(action, str)
        if action == "trigger":
            key = dedup_key or uuid.uuid4().hex
            self._trigger(integration, key, body)
            return key
        assert isinstance(dedup_key, str)
        incident = self.account.open_incident(integration, dedup_key)
        if incident is not None:  # unknown or resolved keys are dropped
            agent = integration_reference(integration)
            client = _event_client(body)
            if action == "acknowledge":
                if incident.status == "triggered":
                    self.account.acknowledge(incident, agent, client)
                else:
                    self.account.log(incident, "acknowledge_log_entry", agent, "Acknowledged again")
            else:
                self.account.resolve(incident, agent, client)
        return dedup_key

    def _trigger(self, integration: Integration, dedup_key: str, body: dict[str, Any]) -> None:
        account, state = self.account, self.account.state
        payload: dict[str, Any] = body["payload"]
        agent = integration_reference(integration)
        existing = account.open_incident(integration, dedup_key)
        if existing is not None:
            # "a trigger log entry is created on an existing alert": no new alert or incident
            account.log(existing, "trigger_log_entry", agent, payload["summary"], event=body)
            return
        service = state.services[integration.service_id]
        policy_id = service["escalation_policy"]["id"]
        at = now()
        state.number += 1
        incident = Incident(
            id=pd_id("Q", 13),
            number=state.number,
            incident_key=dedup_key,
            title=payload["summary"],
            urgency="high" if payload["severity"] in ("critical", "error") else "low",
            service_id=service["id"],
            escalation_policy_id=policy_id,
            integration_id=integration.id,
            created_at=at,
            assignees=[(u, at) for u in account.first_level_oncall(policy_id, at)],
            last_status_change_at=at,
            last_status_change_by=agent,
        )
        incident.alerts.append(_alert(incident, integration, service, dedup_key, body, at))
        state.incidents[incident.id] = incident
        state.open_alerts[(integration.id, dedup_key)] = incident.id
        account.log(incident, "trigger_log_entry", agent, payload["summary"], event=body)
        account.emit_incident("incident.triggered", incident, agent, _event_client(body))


def events_error(status: int, *, headers: dict[str, str] | None = None) -> Response:
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
    incident: Incident,
    integration: Integration,
    service: dict[str, Any],
    dedup_key: str,
    event: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """The alert a trigger opens, its body keeping the event (REST ``alert`` shape)."""
    payload: dict[str, Any] = event["payload"]
    links = [x for x in event.get("links") or [] if isinstance(x, dict)]
    images = [x for x in event.get("images") or [] if isinstance(x, dict)]
    contexts = [{"type": "link", **link} for link in links] + [
        {"type": "image", **image} for image in images
    ]
    alert_id = pd_id("Q", 13)
    return {
        "id": alert_id,
        "type": "alert",
        "summary": payload["summary"],
        "self": f"{API_HOST}/alerts/{alert_id}",
        "html_url": f"{WEB_HOST}/alerts/{alert_id}",
        "created_at": iso_s(at),
        "status": "triggered",
        "resolved_at": None,
        "alert_key": dedup_key,
        "severity": payload["severity"],
        "suppressed": False,
        "service": service_reference(service),
        "incident": incident_reference(incident),
        "integration": integration_reference(integration),
        "body": {
            "type": "alert_body",
            "contexts": contexts,
            "details": payload.get("custom_details"),
            "cef_details": {
                "client": event.get("client"),
                "client_url": event.get("client_url"),
                "contexts": contexts,
                "creation_time": payload.get("timestamp") or iso_s(at),
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
