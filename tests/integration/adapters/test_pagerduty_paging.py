"""PagerDutyPaging (bot.adapters.pagerduty): the real `pagerduty` clients (EventsApiV2Client,
RestApiV2Client) over HTTPS against PagerDutySim, its webhooks received by a tiny receiver.

Aspects under test:
- trigger → acknowledge → resolve round trip: the sim's incident changes status, the
  returned dedup key is the one sent, and the sender delivers incident.triggered,
  .acknowledged and .resolved, signed, to the receiver;
- the event on the wire: POST /v2/enqueue under `events_url` (a URL already ending in
  /v2/enqueue is trimmed), the routing key in the body only, the payload's summary, source,
  severity, component, group, class, custom_details and links, ``client: rollbot``; a
  summary over 1024 characters is clipped rather than refused;
- incident_by_key: the open incident, else the latest; None for an unknown key; one GET
  /incidents with incident_key and date_range=all; incident() and user();
- add_note: From = from_email, the note id returned, incident.annotated with rollbot's user
  as agent; without from_email or api_token → PagerDutyNotConfigured before any request;
  a From PagerDuty does not know → PagerDutyRefused "Requester User Not Found";
- errors: Events 400 → PagerDutyRefused naming the errors (invalid severity, unknown routing
  key); REST 401 → Forbidden; 404 → PagerDutyRefused; Events 5xx and 429 retried exactly
  `max_retries` times, then Unreachable (429 with Retry-After's delay); REST 5xx not
  retried; down → Unreachable quickly; ids that are not PagerDuty ids refused up front;
- neither the routing key nor the token appears in logs (DEBUG) or error messages;
- http:// URLs are refused up front (the client insists on https).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest

from bot.adapters.pagerduty import PagerDutyNotConfigured, PagerDutyPaging, PagerDutyRefused
from bot.core.errors import Forbidden, InvalidRequest, Unreachable
from bot.sim.pagerduty import PagerDutySim
from tests.integration.sim.test_pagerduty import Receiver, verifies

TOKEN = "u+test-paging-token-5ecret"
ROUTING_KEY = "R0UT1NGKEYSECRET0000000000000042"
SECRET = "whsec-paging"
SERVICE, POLICY = "PSVC123", "PESC123"
ROLLBOT_EMAIL = "rollbot@example.com"
KEY = "payment-router:rev-7"


@pytest.fixture(scope="module")
def module_sim() -> Iterator[PagerDutySim]:
    with PagerDutySim(token=TOKEN, webhook_retry_delays=(0.01, 0.02, 0.03, 0.04)) as sim:
        yield sim


@pytest.fixture
def pd(module_sim: PagerDutySim) -> PagerDutySim:
    sim = module_sim
    sim.reset()
    sim.add_user("PROLLBOT", "rollbot", ROLLBOT_EMAIL)
    sim.add_user("PUSER1", "Ada Lovelace", "ada@example.com")
    sim.add_escalation_policy(POLICY, "Payments")
    sim.set_oncall(POLICY, ["PUSER1"])
    sim.add_service(SERVICE, "payment-router", escalation_policy_id=POLICY)
    sim.add_integration(ROUTING_KEY, SERVICE)
    return sim


@pytest.fixture
def receiver(pd: PagerDutySim) -> Iterator[Receiver]:
    with Receiver() as r:
        pd.subscribe(r.url, SECRET)
        yield r


def make(sim: PagerDutySim, **kw: object) -> PagerDutyPaging:
    options: dict[str, object] = {
        "api_token": TOKEN,
        "api_url": sim.url,
        "events_url": sim.events_url,
        "from_email": ROLLBOT_EMAIL,
        "ca_file": sim.ca_file,
        "backoff": 0.01,
    }
    options.update(kw)
    return PagerDutyPaging(**options)  # type: ignore[arg-type]


async def page(paging: PagerDutyPaging, key: str = KEY, **kw: object) -> str:
    options: dict[str, object] = {
        "dedup_key": key,
        "summary": "payment-router canary error rate 7% (SLO 2%)",
        "source": "rollbot",
        "severity": "critical",
        "custom_details": {"service": "payment-router", "revision": "rev-7"},
        "links": [
            {"href": "https://rollbot.example.com/runbooks/payment-router", "text": "Runbook"}
        ],
        "component": "canary",
        "group": "payments",
        "class_": "slo-burn",
    }
    options.update(kw)
    return await paging.trigger(ROUTING_KEY, **options)  # type: ignore[arg-type]


async def test_round_trip_changes_the_incident_and_delivers_webhooks(
    pd: PagerDutySim, receiver: Receiver
) -> None:
    paging = make(pd)
    assert await page(paging) == KEY
    incident = pd.incident_by_key(KEY)
    assert incident is not None
    assert incident["status"] == "triggered" and incident["urgency"] == "high"
    assert incident["title"] == "payment-router canary error rate 7% (SLO 2%)"
    assert incident["service"]["id"] == SERVICE
    [alert] = pd.alerts(incident["id"])
    assert alert["body"]["details"] == {"service": "payment-router", "revision": "rev-7"}
    assert alert["body"]["contexts"] == [
        {
            "type": "link",
            "href": "https://rollbot.example.com/runbooks/payment-router",
            "text": "Runbook",
        }
    ]

    await paging.acknowledge(ROUTING_KEY, KEY)
    assert pd.incident(incident["id"])["status"] == "acknowledged"
    await paging.resolve(ROUTING_KEY, KEY)
    assert pd.incident(incident["id"])["status"] == "resolved"

    got = receiver.wait_for(3)
    assert [r.json()["event"]["event_type"] for r in got] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
    ]
    assert all(r.json()["event"]["data"]["id"] == incident["id"] for r in got)
    assert all(verifies(r.body, r.headers["x-pagerduty-signature"], SECRET) for r in got)
    paging.close()


async def test_the_event_on_the_wire(pd: PagerDutySim) -> None:
    paging = make(pd, events_url=pd.events_url + "/v2/enqueue/")
    await page(paging)
    await paging.acknowledge(ROUTING_KEY, KEY)
    trigger, ack = pd.requests_to("/v2/enqueue")
    sent = trigger.body
    assert sent == {
        "event_action": "trigger",
        "dedup_key": KEY,
        "routing_key": ROUTING_KEY,
        "client": "rollbot",
        "payload": {
            "summary": "payment-router canary error rate 7% (SLO 2%)",
            "source": "rollbot",
            "severity": "critical",
            "component": "canary",
            "group": "payments",
            "class": "slo-burn",
            "custom_details": {"service": "payment-router", "revision": "rev-7"},
        },
        "links": [
            {"href": "https://rollbot.example.com/runbooks/payment-router", "text": "Runbook"}
        ],
    }
    assert ack.body == {
        "event_action": "acknowledge",
        "dedup_key": KEY,
        "routing_key": ROUTING_KEY,
    }
    for request in (trigger, ack):
        assert request.method == "POST" and request.status == 202
        assert request.headers["content-type"] == "application/json"
        assert "authorization" not in request.headers
        assert ROUTING_KEY not in json.dumps(request.headers) and not request.query


async def test_long_summary_is_clipped_not_refused(pd: PagerDutySim) -> None:
    await page(make(pd), summary="x" * 5000)
    incident = pd.incident_by_key(KEY)
    assert incident is not None
    assert len(incident["title"]) == 1024 and incident["title"].endswith("…")


async def test_incident_by_key_open_else_latest(pd: PagerDutySim) -> None:
    paging = make(pd, page_size=1)
    assert await paging.incident_by_key(KEY) is None
    await page(paging)
    await paging.resolve(ROUTING_KEY, KEY)
    await page(paging)
    first, second = pd.incidents()
    found = await paging.incident_by_key(KEY)
    assert found is not None and found["id"] == second["id"] and found["status"] == "triggered"
    await paging.resolve(ROUTING_KEY, KEY)
    latest = await paging.incident_by_key(KEY)
    assert latest is not None and latest["id"] == second["id"]

    requests = pd.requests_to("/incidents")
    assert requests[-1].params("incident_key") == [KEY]
    assert requests[-1].params("date_range") == ["all"]
    assert [r.params("offset") for r in requests[-2:]] == [["0"], ["1"]]  # page size 1

    assert (await paging.incident(first["id"]))["status"] == "resolved"
    user = await paging.user("PUSER1")
    assert (user["email"], user["name"]) == ("ada@example.com", "Ada Lovelace")
    with pytest.raises(PagerDutyRefused) as err:
        await paging.incident("QNOTTHERE")
    assert err.value.status == 404
    with pytest.raises(InvalidRequest):
        await paging.user("../users/PUSER1")


async def test_add_note_as_from_email(pd: PagerDutySim, receiver: Receiver) -> None:
    paging = make(pd)
    await page(paging)
    incident = await paging.incident_by_key(KEY)
    assert incident is not None
    note_id = await paging.add_note(incident["id"], "rollbot: tier 1 abort verified")
    [note] = pd.notes(incident["id"])
    assert note["id"] == note_id and note["user"]["id"] == "PROLLBOT"
    assert note["content"] == "rollbot: tier 1 abort verified"
    [post] = [r for r in pd.requests if r.method == "POST" and r.path.endswith("/notes")]
    assert post.headers["from"] == ROLLBOT_EMAIL
    assert post.body == {"note": {"content": "rollbot: tier 1 abort verified"}}
    annotated = [e for e in receiver.events(2) if e["event_type"] == "incident.annotated"]
    assert annotated[0]["agent"]["id"] == "PROLLBOT"


async def test_add_note_needs_from_email_and_a_token(pd: PagerDutySim) -> None:
    await page(make(pd))
    incident = pd.incident_by_key(KEY)
    assert incident is not None
    pd.clear_requests()
    with pytest.raises(PagerDutyNotConfigured, match="from_email"):
        await make(pd, from_email=None).add_note(incident["id"], "x")
    events_only = make(pd, api_token=None)
    with pytest.raises(PagerDutyNotConfigured, match="API_TOKEN"):
        await events_only.add_note(incident["id"], "x")
    with pytest.raises(PagerDutyNotConfigured):
        await events_only.incident_by_key(KEY)
    assert pd.requests == []  # refused before asking PagerDuty
    assert await page(events_only, "another-key") == "another-key"  # events need no token

    with pytest.raises(PagerDutyRefused, match="Requester User Not Found") as err:
        await make(pd, from_email="stranger@example.com").add_note(incident["id"], "x")
    assert err.value.status == 400


async def test_invalid_events_are_refused_naming_the_errors(pd: PagerDutySim) -> None:
    paging = make(pd)
    with pytest.raises(PagerDutyRefused) as err:
        await page(paging, severity="fatal")
    assert err.value.status == 400
    assert "Event object is invalid" in err.value.detail
    assert "'payload.severity' is invalid" in err.value.detail
    with pytest.raises(PagerDutyRefused, match="Invalid routing key"):
        await paging.trigger(
            "RUNKNOWN00000000000000000000000",
            dedup_key=KEY,
            summary="s",
            source="rollbot",
            severity="error",
            custom_details={},
            links=[],
        )
    assert [r.status for r in pd.requests_to("/v2/enqueue")] == [400, 400]  # not retried
    assert pd.incidents() == []


async def test_bad_token_is_forbidden(pd: PagerDutySim) -> None:
    with pytest.raises(Forbidden, match="Authentication failed"):
        await make(pd, api_token="u+wrong").incident_by_key(KEY)


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_events_5xx_retried_exactly_max_retries(pd: PagerDutySim, retries: int) -> None:
    pd.force_status(50, 503, path="/v2/enqueue")
    started = time.monotonic()
    with pytest.raises(Unreachable, match="503"):
        await page(make(pd, max_retries=retries))
    assert time.monotonic() - started < 2.0
    assert len(pd.requests_to("/v2/enqueue")) == retries + 1


async def test_events_429_bounded_then_unreachable_with_retry_after(pd: PagerDutySim) -> None:
    pd.force_status(50, 429, retry_after=9, path="/v2/enqueue")
    with pytest.raises(Unreachable) as err:
        await page(make(pd, max_retries=2))
    assert err.value.delay == 9 and "429" in err.value.message
    assert len(pd.requests_to("/v2/enqueue")) == 3


async def test_transient_failures_within_the_bound_are_absorbed(pd: PagerDutySim) -> None:
    pd.force_status(1, 500, path="/v2/enqueue")
    pd.force_status(1, 429, retry_after=1, path="/v2/enqueue")
    assert await page(make(pd, max_retries=2)) == KEY
    assert [r.status for r in pd.requests_to("/v2/enqueue")] == [500, 429, 202]


async def test_rest_5xx_is_not_retried(pd: PagerDutySim) -> None:
    await page(make(pd))
    incident = pd.incident_by_key(KEY)
    assert incident is not None
    pd.force_status(1, 502, path="/incidents")
    with pytest.raises(Unreachable, match="502"):
        await make(pd, max_retries=2).add_note(incident["id"], "x")
    assert len([r for r in pd.requests if r.path.endswith("/notes")]) == 1
    assert pd.notes(incident["id"]) == []


async def test_down_is_unreachable_quickly(pd: PagerDutySim) -> None:
    paging = make(pd, max_retries=1)
    pd.set_down(True)
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="Connect"):
            await page(paging)
        with pytest.raises(Unreachable):
            await paging.incident_by_key(KEY)
        assert time.monotonic() - started < 2.0
    finally:
        pd.set_down(False)
    pd.set_down(True, status=503)
    try:
        with pytest.raises(Unreachable, match="503"):
            await paging.acknowledge(ROUTING_KEY, KEY)
    finally:
        pd.set_down(False)
    assert await page(paging) == KEY


async def test_secrets_stay_out_of_logs_and_errors(
    pd: PagerDutySim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    paging = make(pd, max_retries=1)
    await page(paging)
    errors: list[Exception] = []
    pd.force_status(2, 503, path="/v2/enqueue")
    pd.force_status(1, 400, path="/incidents")
    for call in (page(paging), paging.incident_by_key(KEY)):
        try:
            await call
        except Exception as e:  # noqa: BLE001 - collected to inspect their text
            errors.append(e)
    with pytest.raises(Forbidden) as refused:
        await make(pd, api_token=TOKEN + "x").user("PUSER1")
    errors.append(refused.value)
    assert len(errors) == 3
    text = caplog.text + "".join(f"{e!s}{e!r}{e.__cause__!s}" for e in errors)
    for secret in (ROUTING_KEY, ROUTING_KEY[-4:], TOKEN):
        assert secret not in text
    assert "pagerduty event accepted" in caplog.text


def test_http_urls_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="https"):
        PagerDutyPaging(api_token=None, events_url="http://127.0.0.1:9", from_email=None)
    with pytest.raises(ValueError, match="https"):
        PagerDutyPaging(api_token=TOKEN, api_url="http://127.0.0.1:9", from_email=None)
