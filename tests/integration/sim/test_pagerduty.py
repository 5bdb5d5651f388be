"""PagerDutySim's Events API v2, incidents, notes, v3 webhooks and Incident Workflows, over
HTTPS with plain httpx, checked against tests/fixtures/pagerduty.

Aspects under test:
- the Events API v2 fixtures (trigger, acknowledge, resolve) are accepted as they are (only
  the routing key substituted): 202 with PagerDuty's body; the trigger opens an incident with
  the payload kept in its alert (custom_details, links, images, PD-CEF fields), urgency from
  the severity, assigned to the first on-call level of the service's escalation policy;
- invalid events → 400 ``invalid event`` naming every problem; nothing opened; a trigger
  without dedup_key gets a generated one; acknowledge/resolve of an unknown key is dropped;
- dedup semantics: trigger twice → one incident, one alert, two trigger log entries;
  resolve, then trigger again → a second incident; GET /incidents filters;
- the REST incident's keys ⊇ the fixture incident's (``assignments`` for ``assignees``);
  the webhook envelope's keys equal the fixture's, its incident data's keys too;
- writes need ``From``: missing → 400 code 2016, unknown → 400 "Requester User Not Found";
  PUT acknowledges/resolves, notes POST 201 and GET;
- v3 deliveries: PagerDuty's headers, ``v1=`` HMAC over the exact raw body, two signatures
  during a rotation (each verifying with its own secret), unique X-Webhook-Id, event-type
  filters, person actions (acknowledge, annotate, escalate, reassign, resolve) with the
  person as agent, sent from the sender thread (the API answers before the receiver does),
  retried on 5xx/429/no answer with the same X-Webhook-Id, dropped on other 4xx,
  `redeliver` with the same X-Webhook-Id;
- Incident Workflows: the default body and a custom one with field references replaced;
- `set_down(status=503)` answers both APIs 503; `events()` records the bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bot.sim.pagerduty import DEFAULT_WORKFLOW_BODY, PagerDutySim
from tests.helpers import eventually_sync
from tests.plugins.fixtures import load_fixture

TOKEN = "u+test-pagerduty-token"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
SECRET = "whsec-test-1"
SERVICE, POLICY = "PSVC123", "PESC123"
ACCEPT = "application/vnd.pagerduty+json;version=2"


# ---------------------------------------------------------------------- a webhook receiver


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A plain-http endpoint that records what is POSTed to it, answering `statuses` in turn
    (200 once they run out); `gate`, when set, holds every answer until it is opened."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.gate is not None:
                    outer.gate.wait(10.0)
                with outer._lock:
                    outer.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/pagerduty"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        def arrived() -> list[Received] | None:
            with self._lock:
                return list(self.received) if len(self.received) >= n else None

        return eventually_sync(
            arrived,
            timeout=timeout,
            interval=0.01,
            what=lambda: f"{n} webhooks ({len(self.received)} received)",
        )

    def events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [r.json()["event"] for r in self.wait_for(n, timeout)]


def verifies(body: bytes, header: str, secret: str) -> bool:
    """PagerDuty's documented check: any ``v1=`` signature equal to HMAC-SHA256(secret)."""
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in header.split(","))


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def module_sim() -> Iterator[PagerDutySim]:
    with PagerDutySim(token=TOKEN, webhook_retry_delays=(0.01, 0.02, 0.03, 0.04)) as sim:
        yield sim


@pytest.fixture
def pd(module_sim: PagerDutySim) -> PagerDutySim:
    """A fresh world: a payments service and policy with two on call at level 1, one at 2."""
    sim = module_sim
    sim.reset()
    sim.add_user("PUSER1", "Ada Lovelace", "ada@example.com")
    sim.add_user("PUSER2", "Grace Hopper", "grace@example.com")
    sim.add_user("PUSER3", "Edsger Dijkstra", "edsger@example.com")
    sim.add_escalation_policy(POLICY, "Payments")
    sim.set_oncall(POLICY, ["PUSER1", "PUSER2"], level=1)
    sim.set_oncall(POLICY, ["PUSER3"], level=2)
    sim.add_service(SERVICE, "payment-router", escalation_policy_id=POLICY)
    sim.add_integration(ROUTING_KEY, SERVICE)
    return sim


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def client(sim: PagerDutySim) -> httpx.Client:
    return httpx.Client(
        base_url=sim.url,
        verify=ssl.create_default_context(cafile=sim.ca_file),
        headers={"Authorization": f"Token token={TOKEN}", "Accept": ACCEPT},
    )


def enqueue(sim: PagerDutySim, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=sim.ca_file)) as c:
        return c.post(f"{sim.events_url}/v2/enqueue", json=body)


def trigger(sim: PagerDutySim, dedup_key: str | None = "payment-router:rev-7", **payload: Any):
    body: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {
            "summary": "payment-router canary error rate 7%",
            "source": "rollbot",
            "severity": "critical",
            **payload,
        },
    }
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    return enqueue(sim, body)


def action(sim: PagerDutySim, event_action: str, dedup_key: str) -> httpx.Response:
    return enqueue(
        sim, {"routing_key": ROUTING_KEY, "event_action": event_action, "dedup_key": dedup_key}
    )


# ---------------------------------------------------------------------- Events API v2


def test_trigger_fixture_is_accepted_as_it_is(pd: PagerDutySim) -> None:
    event = load_fixture("pagerduty/events-v2.trigger.request.json")
    event["routing_key"] = ROUTING_KEY
    answer = enqueue(pd, event)
    assert answer.status_code == 202
    assert answer.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "samplekeyhere",
    }
    assert pd.events() == [event]

    [incident] = pd.incidents()
    assert incident["status"] == "triggered"
    assert incident["incident_key"] == "samplekeyhere"
    assert incident["title"] == "Example alert on host1.example.com"
    assert incident["urgency"] == "low"  # severity info
    assert incident["service"]["id"] == SERVICE
    assert incident["service"]["type"] == "service_reference"
    assert incident["escalation_policy"]["id"] == POLICY
    assert [a["assignee"]["id"] for a in incident["assignments"]] == ["PUSER1", "PUSER2"]
    assert incident["alert_counts"] == {"all": 1, "triggered": 1, "resolved": 0}

    [alert] = pd.alerts(incident["id"])
    assert alert["alert_key"] == "samplekeyhere"
    assert alert["body"]["details"] == {"ping time": "1500ms", "load avg": 0.75}
    assert alert["body"]["contexts"] == [
        {"type": "link", "href": "https://example.com/", "text": "Link text"},
        {"type": "image", **event["images"][0]},
    ]
    cef = alert["body"]["cef_details"]
    assert (cef["source_component"], cef["service_group"], cef["event_class"]) == (
        "postgres",
        "prod-datapipe",
        "deploy",
    )
    assert cef["client"] == "Sample Monitoring Service"


def test_acknowledge_and_resolve_fixtures(pd: PagerDutySim) -> None:
    assert trigger(pd, "dedupkeyhere").status_code == 202
    for name, status in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        event = load_fixture(f"pagerduty/events-v2.{name}.request.json")
        event["routing_key"] = ROUTING_KEY
        answer = enqueue(pd, event)
        assert answer.status_code == 202
        assert answer.json()["dedup_key"] == "dedupkeyhere"
        incident = pd.incident_by_key("dedupkeyhere")
        assert incident is not None and incident["status"] == status
    incident = pd.incident_by_key("dedupkeyhere")
    assert incident is not None
    assert incident["alert_counts"] == {"all": 1, "triggered": 0, "resolved": 1}
    assert incident["acknowledgements"] == []  # resolving clears them


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": "RUNKNOWN"}, "Invalid routing key"),
        ({"routing_key": ""}, "'routing_key' is missing or blank"),
        ({"event_action": "explode"}, "'event_action' is invalid"),
        ({"payload": None}, "'payload' is missing or blank"),
        ({"payload": {"source": "x", "severity": "info"}}, "'payload.summary' is missing"),
        ({"payload": {"summary": "x", "severity": "info"}}, "'payload.source' is missing"),
        ({"payload": {"summary": "x", "source": "y", "severity": "fatal"}}, "severity' is inv"),
        ({"payload": {"summary": "x" * 1025, "source": "y", "severity": "info"}}, "too long"),
        ({"dedup_key": "k" * 256}, "'dedup_key' is too long"),
    ],
)
def test_invalid_event_is_400(pd: PagerDutySim, change: dict[str, Any], error: str) -> None:
    event = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "src", "severity": "error"},
        **change,
    }
    answer = enqueue(pd, event)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(error in e for e in body["errors"]), body["errors"]
    assert pd.incidents() == []


def test_every_problem_is_named_and_acknowledge_needs_a_dedup_key(pd: PagerDutySim) -> None:
    body = enqueue(pd, {"routing_key": ROUTING_KEY, "event_action": "trigger"}).json()
    assert body["errors"] == ["'payload' is missing or blank"]
    both = enqueue(pd, {"event_action": "trigger", "payload": {"severity": "x"}}).json()
    assert len(both["errors"]) == 4  # routing key, summary, source, severity
    ack = enqueue(pd, {"routing_key": ROUTING_KEY, "event_action": "acknowledge"})
    assert ack.status_code == 400 and ack.json()["errors"] == ["'dedup_key' is missing or blank"]
    assert enqueue(pd, ["not", "an", "object"]).status_code == 400  # type: ignore[arg-type]


def test_trigger_without_dedup_key_gets_one(pd: PagerDutySim) -> None:
    first, second = trigger(pd, None).json(), trigger(pd, None).json()
    assert len(first["dedup_key"]) == 32 and first["dedup_key"] != second["dedup_key"]
    assert len(pd.incidents()) == 2  # "will always generate a new alert"
    assert pd.incident_by_key(first["dedup_key"]) is not None


def test_acknowledge_or_resolve_of_an_unknown_key_is_dropped(pd: PagerDutySim) -> None:
    for name in ("acknowledge", "resolve"):
        answer = action(pd, name, "never-triggered")
        assert answer.status_code == 202
        assert answer.json()["dedup_key"] == "never-triggered"
    assert pd.incidents() == []
    assert pd.webhook_events() == []


def test_dedup_open_key_adds_to_the_alert_resolved_key_opens_a_new_incident(
    pd: PagerDutySim,
) -> None:
    key = "payment-router:rev-7"
    trigger(pd, key)
    trigger(pd, key, summary="payment-router canary error rate 9%")
    [incident] = pd.incidents()
    assert incident["alert_counts"]["all"] == 1  # the same alert, not a second one
    assert incident["title"] == "payment-router canary error rate 7%"  # the first summary
    kinds = [e["type"] for e in pd.log_entries(incident["id"])]
    assert kinds == ["trigger_log_entry", "trigger_log_entry"]
    assert [e["event_type"] for e in (w["event"] for w in pd.webhook_events())] == [
        "incident.triggered"
    ]

    action(pd, "resolve", key)
    assert action(pd, "acknowledge", key).status_code == 202  # dropped: resolved
    assert pd.incident(incident["id"])["status"] == "resolved"
    trigger(pd, key)
    first, second = pd.incidents()
    assert first["id"] == incident["id"] and first["status"] == "resolved"
    assert second["status"] == "triggered" and second["number"] == first["number"] + 1
    assert second["incident_key"] == key

    with client(pd) as c:
        by_key = c.get("/incidents", params={"incident_key": key}).json()
        assert [i["id"] for i in by_key["incidents"]] == [first["id"], second["id"]]
        assert by_key["more"] is False and by_key["limit"] == 25
        open_only = c.get(
            "/incidents",
            params={"incident_key": key, "statuses[]": ["triggered", "acknowledged"]},
        ).json()
        assert [i["id"] for i in open_only["incidents"]] == [second["id"]]
        elsewhere = c.get("/incidents", params={"service_ids[]": "POTHER"}).json()
        assert elsewhere["incidents"] == []
        paged = c.get("/incidents", params={"limit": 1, "date_range": "all"}).json()
        assert len(paged["incidents"]) == 1 and paged["more"] is True
        bad = c.get("/incidents", params={"statuses[]": "sleeping"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == 2001


def test_incident_shape_covers_the_fixture(pd: PagerDutySim) -> None:
    trigger(pd)
    fixture = load_fixture("pagerduty/webhook-v3.data-type.incident.json")
    [listed] = pd.incidents()
    with client(pd) as c:
        answer = c.get(f"/incidents/{listed['id']}")
        assert c.get("/incidents/QNOPE").status_code == 404
    assert answer.status_code == 200
    incident = answer.json()["incident"]
    # REST names the assignees `assignments`; everything else the fixture has, it has
    assert set(incident) >= (set(fixture) - {"assignees"}) | {
        "assignments",
        "alert_counts",
        "last_status_change_at",
        "summary",
    }
    assert incident["type"] == "incident"
    assert incident["summary"] == f"[#{incident['number']}] {incident['title']}"
    assert incident["self"].endswith(f"/incidents/{incident['id']}")
    assert incident["assignments"][0]["assignee"]["type"] == "user_reference"
    assert incident["escalation_policy"]["type"] == "escalation_policy_reference"
    assert incident["created_at"].endswith("Z") and len(incident["created_at"]) == 20
    with client(pd) as c:
        alerts = c.get(f"/incidents/{incident['id']}/alerts").json()
        entries = c.get(f"/incidents/{incident['id']}/log_entries").json()
    assert [a["type"] for a in alerts["alerts"]] == ["alert"]
    assert [e["type"] for e in entries["log_entries"]] == ["trigger_log_entry"]


# ---------------------------------------------------------------------- REST writes


def test_writes_need_a_known_from(pd: PagerDutySim, receiver: Receiver) -> None:
    pd.subscribe(receiver.url, SECRET)
    trigger(pd)
    [incident] = pd.incidents()
    path = f"/incidents/{incident['id']}"
    ack = {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    with client(pd) as c:
        missing = c.put(path, json=ack)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == 2016
        assert '"From" header' in missing.json()["error"]["message"]
        unknown = c.put(path, json=ack, headers={"From": "nobody@example.com"})
        assert unknown.status_code == 400
        assert unknown.json()["error"] == {"message": "Requester User Not Found", "code": 1008}
        assert pd.incident(incident["id"])["status"] == "triggered"

        done = c.put(path, json=ack, headers={"From": "Grace@Example.com"})
        assert done.status_code == 200
        assert done.json()["incident"]["status"] == "acknowledged"
        [acked] = done.json()["incident"]["acknowledgements"]
        assert acked["acknowledger"]["id"] == "PUSER2"

        no_note = c.post(f"{path}/notes", json={"note": {"content": "x"}})
        assert no_note.status_code == 400 and no_note.json()["error"]["code"] == 2016
        blank = c.post(
            f"{path}/notes", json={"note": {"content": " "}}, headers={"From": "ada@example.com"}
        )
        assert blank.status_code == 400
        note = c.post(
            f"{path}/notes",
            json={"note": {"content": "rollbot: canary aborted"}},
            headers={"From": "ada@example.com"},
        )
        assert note.status_code == 201
        created = note.json()["note"]
        assert set(created) == {"id", "user", "channel", "content", "created_at"}
        assert created["user"]["id"] == "PUSER1" and created["content"] == "rollbot: canary aborted"
        listed = c.get(f"{path}/notes").json()
        assert listed == {"notes": [created]}

        resolved = c.put(
            path,
            json={"incident": {"type": "incident_reference", "status": "resolved"}},
            headers={"From": "ada@example.com"},
        )
        assert resolved.json()["incident"]["status"] == "resolved"
        again = c.put(path, json=ack, headers={"From": "ada@example.com"})
        assert again.status_code == 400
        assert again.json()["error"]["errors"] == ["Incident Already Resolved"]

    events = receiver.events(4)
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.resolved",
    ]
    assert events[1]["agent"]["id"] == "PUSER2"  # the From user
    assert events[2]["agent"]["id"] == "PUSER1"
    assert events[2]["data"]["content"] == "rollbot: canary aborted"


# ---------------------------------------------------------------------- v3 webhooks


def test_webhook_envelope_headers_and_signature(pd: PagerDutySim, receiver: Receiver) -> None:
    sub = pd.subscribe(receiver.url, SECRET)
    trigger(pd, summary="Zahlungsfehler \u2013 canary \u00e9chec \u2603")  # UTF-8 in the body
    [got] = receiver.wait_for(1)
    fixture = load_fixture("pagerduty/webhook-v3.incident.priority_updated.json")
    data_fixture = load_fixture("pagerduty/webhook-v3.data-type.incident.json")
    envelope = got.json()
    assert set(envelope) == set(fixture) == {"event"}
    event = envelope["event"]
    assert set(event) == set(fixture["event"])
    assert set(event["data"]) == set(data_fixture)
    assert event["event_type"] == "incident.triggered" and event["resource_type"] == "incident"
    assert event["data"]["title"] == "Zahlungsfehler \u2013 canary \u00e9chec \u2603"
    assert [a["id"] for a in event["data"]["assignees"]] == ["PUSER1", "PUSER2"]
    assert event["agent"]["type"] == "events_api_v2_inbound_integration_reference"
    assert event["occurred_at"].endswith("Z") and "." in event["occurred_at"]

    assert got.path == "/webhooks/pagerduty"
    assert got.headers["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["x-webhook-subscription"] == sub
    signature = got.headers["x-pagerduty-signature"]
    assert signature.startswith("v1=") and "," not in signature
    assert verifies(got.body, signature, SECRET)
    assert not verifies(got.body + b" ", signature, SECRET)  # the exact raw bytes
    assert not verifies(got.body, signature, "whsec-other")

    [delivery] = pd.drain()
    assert delivery.outcome == "delivered" and delivery.status == 200
    assert delivery.id == got.headers["x-webhook-id"]
    assert delivery.body == got.body


def test_rotation_signs_with_both_secrets(pd: PagerDutySim, receiver: Receiver) -> None:
    sub = pd.subscribe(receiver.url, "whsec-old")
    pd.rotate_secret(sub, "whsec-new")
    trigger(pd, "k1")
    pd.finish_rotation(sub)
    trigger(pd, "k2")
    during, after = receiver.wait_for(2)
    both = during.headers["x-pagerduty-signature"].split(",")
    assert len(both) == 2 and all(s.startswith("v1=") for s in both)
    new, old = both
    assert verifies(during.body, new, "whsec-new") and not verifies(during.body, new, "whsec-old")
    assert verifies(during.body, old, "whsec-old") and not verifies(during.body, old, "whsec-new")
    only = after.headers["x-pagerduty-signature"]
    assert "," not in only and verifies(after.body, only, "whsec-new")
    assert not verifies(after.body, only, "whsec-old")


def test_person_actions_emit_webhooks_with_the_person_as_agent(
    pd: PagerDutySim, receiver: Receiver
) -> None:
    pd.subscribe(receiver.url, SECRET)
    trigger(pd)
    [incident] = pd.incidents()
    iid = incident["id"]
    pd.acknowledge(iid, "PUSER1")
    note = pd.annotate(iid, "PUSER2", "looking at the canary")
    pd.escalate(iid, "PUSER3")
    pd.reassign(iid, "PUSER3", ["PUSER2"])
    pd.resolve(iid, "PUSER2")
    events = receiver.events(6)
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.escalated",
        "incident.reassigned",
        "incident.resolved",
    ]
    ack = events[1]
    assert ack["agent"]["id"] == "PUSER1" and ack["agent"]["type"] == "user_reference"
    assert ack["client"] == {"name": "PagerDuty"}
    assert ack["data"]["status"] == "acknowledged"
    annotated = events[2]
    assert annotated["agent"]["id"] == "PUSER2"
    assert annotated["data"] == {
        "incident": {
            "id": iid,
            "type": "incident_reference",
            "summary": incident["title"],
            "self": incident["self"],
            "html_url": incident["html_url"],
        },
        "id": note["id"],
        "content": "looking at the canary",
        "trimmed": False,
        "type": "incident_note",
    }
    escalated = events[3]["data"]
    assert [a["id"] for a in escalated["assignees"]] == ["PUSER3"]
    assert escalated["status"] == "triggered"  # an escalation undoes the acknowledgement
    assert [a["id"] for a in events[4]["data"]["assignees"]] == ["PUSER2"]
    assert events[5]["agent"]["id"] == "PUSER2" and events[5]["data"]["status"] == "resolved"
    assert len({r.headers["x-webhook-id"] for r in receiver.received}) == 6
    assert len({e["id"] for e in events}) == 6
    with pytest.raises(ValueError, match="resolved"):
        pd.acknowledge(iid, "PUSER1")


def test_event_type_and_service_filters(pd: PagerDutySim, receiver: Receiver) -> None:
    pd.subscribe(receiver.url, SECRET, event_types=["incident.resolved"])
    pd.subscribe(receiver.url, SECRET, service_id="POTHER")
    with pytest.raises(ValueError, match="unknown webhook event types"):
        pd.subscribe(receiver.url, SECRET, event_types=["incident.exploded"])
    trigger(pd)
    action(pd, "acknowledge", "payment-router:rev-7")
    action(pd, "resolve", "payment-router:rev-7")
    assert [d.event_type for d in pd.drain()] == ["incident.resolved"]
    assert [e["event_type"] for e in receiver.events(1)] == ["incident.resolved"]


def test_delivered_from_the_sender_thread(pd: PagerDutySim, receiver: Receiver) -> None:
    """The Events API answers while the receiver still holds the webhook it caused."""
    receiver.gate = threading.Event()
    pd.subscribe(receiver.url, SECRET)
    started = time.monotonic()
    assert trigger(pd).status_code == 202
    assert time.monotonic() - started < 2.0
    [delivery] = pd.deliveries()
    assert delivery.outcome == "pending" and receiver.received == []
    receiver.gate.set()
    assert delivery.wait(5.0).outcome == "delivered"


def test_failed_delivery_is_retried_with_the_same_id(pd: PagerDutySim, receiver: Receiver) -> None:
    pd.subscribe(receiver.url, SECRET)
    receiver.statuses = [500, 429, 503]
    trigger(pd)
    [delivery] = pd.wait_deliveries(1)
    assert delivery.outcome == "delivered"
    assert [a.status for a in delivery.attempts] == [500, 429, 503, 200]
    got = receiver.wait_for(4)
    assert len({r.headers["x-webhook-id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1


def test_permanent_errors_and_exhausted_retries(pd: PagerDutySim, receiver: Receiver) -> None:
    pd.subscribe(receiver.url, SECRET, event_types=["incident.triggered"])
    receiver.statuses = [400]
    trigger(pd, "k1")
    [dropped] = pd.wait_deliveries(1)
    assert dropped.outcome == "dropped" and [a.status for a in dropped.attempts] == [400]

    receiver.statuses = [502] * 5
    trigger(pd, "k2")
    failed = pd.wait_deliveries(2)[1]
    assert failed.outcome == "failed" and failed.status == 502
    assert len(failed.attempts) == 5  # PagerDuty: 1 + 4 retries

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    pd.reset()
    pd.add_user("PUSER1", "Ada Lovelace", "ada@example.com")
    pd.set_oncall(POLICY, ["PUSER1"])
    pd.add_service(SERVICE, "payment-router", escalation_policy_id=POLICY)
    pd.add_integration(ROUTING_KEY, SERVICE)
    pd.subscribe(closed, SECRET)
    trigger(pd)
    [unanswered] = pd.wait_deliveries(1)
    assert unanswered.outcome == "failed" and unanswered.status is None
    assert len(unanswered.attempts) == 5
    assert all(a.error and "Connect" in a.error for a in unanswered.attempts)


def test_redeliver_sends_the_same_webhook_again(pd: PagerDutySim, receiver: Receiver) -> None:
    pd.subscribe(receiver.url, SECRET)
    trigger(pd)
    [first] = pd.drain()
    again = pd.redeliver(first.id).wait()
    assert again.outcome == "delivered" and again.redelivery_of is first
    one, two = receiver.wait_for(2)
    assert one.headers["x-webhook-id"] == two.headers["x-webhook-id"] == first.id
    assert one.body == two.body
    assert one.headers["x-pagerduty-signature"] == two.headers["x-pagerduty-signature"]
    with pytest.raises(KeyError):
        pd.redeliver("no-such-delivery")


# ---------------------------------------------------------------------- Incident Workflows


def test_workflow_default_body(pd: PagerDutySim, receiver: Receiver) -> None:
    trigger(pd)
    [incident] = pd.incidents()
    pd.add_workflow("Rollback Tier 1: abort", receiver.url)
    delivery = pd.run_workflow(incident["id"], "Rollback Tier 1: abort", "PUSER2").wait()
    assert delivery.outcome == "delivered" and delivery.kind == "workflow"
    [got] = receiver.wait_for(1)
    assert got.json() == {
        "action": "Rollback Tier 1: abort",
        "incident": {
            "id": incident["id"],
            "incident_key": "payment-router:rev-7",
            "service_id": SERVICE,
        },
        "user": {"id": "PUSER2", "email": "grace@example.com", "name": "Grace Hopper"},
    }
    assert set(DEFAULT_WORKFLOW_BODY) == {"action", "incident", "user"}
    assert got.headers["content-type"] == "application/json"
    assert "x-pagerduty-signature" not in got.headers  # workflows do not sign
    assert "x-webhook-id" not in got.headers


def test_workflow_custom_body_and_headers(pd: PagerDutySim, receiver: Receiver) -> None:
    trigger(pd)
    [incident] = pd.incidents()
    pd.add_workflow(
        "Tier 2: open circuit",
        receiver.url,
        headers={"Authorization": "Bearer wf-secret", "X-Incident": "{{incident.id}}"},
        body={
            "what": "open circuit for {{ incident.service.summary }}",
            "who": ["{{current_user.email}}", "{{current_user.id}}"],
            "incident": {"title": "{{incident.title}}", "key": "{{incident.incident_key}}"},
        },
    )
    pd.run_workflow(incident["id"], "Tier 2: open circuit", "PUSER1").wait()
    [got] = receiver.wait_for(1)
    assert got.json() == {
        "what": "open circuit for payment-router",
        "who": ["ada@example.com", "PUSER1"],
        "incident": {"title": incident["title"], "key": "payment-router:rev-7"},
    }
    assert got.headers["authorization"] == "Bearer wf-secret"
    assert got.headers["x-incident"] == incident["id"]
    with pytest.raises(ValueError, match=r"incident\.priority"):
        pd.add_workflow("bad", receiver.url, body={"p": "{{incident.priority}}"})
    with pytest.raises(KeyError):
        pd.run_workflow(incident["id"], "never added", "PUSER1")


# ---------------------------------------------------------------------- faults


def test_set_down_with_a_status_answers_both_apis(pd: PagerDutySim) -> None:
    pd.set_down(True, status=503)
    answer = trigger(pd)
    assert answer.status_code == 503 and answer.json()["status"] == "error"
    with client(pd) as c:
        rest = c.get("/incidents")
        assert rest.status_code == 503 and rest.json()["error"]["code"] == 2000
    pd.set_down(False)
    assert trigger(pd).status_code == 202
    pd.force_status(1, 429, retry_after=2, path="/v2/enqueue")
    limited = trigger(pd)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["status"] == "throttle event"
    assert [r.status for r in pd.requests_to("/v2/enqueue")] == [503, 202, 429]
