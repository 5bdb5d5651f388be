"""bot.core.alerts: Alertmanager webhook bodies read as alerts, and alerts routed to services.

Aspects under test:
- all four fixture bodies parse (real Alertmanager 0.25 firing/resolved, prometheus-msteams
  v4 bodies without per-alert status/fingerprint/generatorURL/truncatedAlerts): names,
  statuses (derived from the group when absent), fingerprints (Alertmanager's, or a stable
  hash of the sorted labels), times (Go's zero time is None, nanoseconds tolerated), group;
- newer keys (`notification_reason`, `routeLabels`, `truncatedAlerts`) are kept or defaulted;
- malformed bodies: each problem gives `MalformedWebhook` (a ValueError) naming it exactly;
- fuzz: any bytes, and any JSON value, either parse or raise a ValueError with a message;
- routing: default matchers (service/app/rollout label × service or rollout name, namespace
  only when present), explicit matchers (all labels must equal), several services, unknown;
- alert_signal and NoticeThrottle.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.alerts import (
    AlertMatcher,
    AlertRouter,
    MalformedWebhook,
    NoticeThrottle,
    alert_signal,
    default_matchers,
    labels_fingerprint,
    parse_webhook,
    route_alerts,
)
from bot.core.errors import InvalidRequest
from bot.core.model import Alert
from tests.plugins.fixtures import FIXTURES

AM = FIXTURES / "alertmanager"
FIXTURE_FILES = sorted(p.name for p in AM.glob("*.json"))


def body(name: str) -> bytes:
    return (AM / name).read_bytes()


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_all_four_fixtures_are_here() -> None:
    assert FIXTURE_FILES == [
        "alertmanager-0.25.firing.json",
        "alertmanager-0.25.resolved.json",
        "prometheus-msteams.prom_post_request.json",
        "prometheus-msteams.prom_post_request_2_alerts.json",
    ]


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_fixture_parses(name: str) -> None:
    alerts, group = parse_webhook(body(name))
    raw = json.loads(body(name))
    assert len(alerts) == len(raw["alerts"])
    assert group["version"] == "4"
    assert "alerts" not in group
    assert group["truncatedAlerts"] == 0
    assert group["receiver"] == raw["receiver"]
    for alert, raw_alert in zip(alerts, raw["alerts"], strict=True):
        assert alert.labels == raw_alert["labels"]
        assert alert.name == raw_alert["labels"]["alertname"]
        assert alert.status == raw_alert.get("status", raw["status"])
        assert len(alert.fingerprint) == 16
        assert alert.starts_at is not None and alert.starts_at.tzinfo is not None


def test_alertmanager_025_firing() -> None:
    (alert,), group = parse_webhook(body("alertmanager-0.25.firing.json"))
    assert alert == Alert(
        fingerprint="f01341052d6b3406",
        name="HighErrorRate",
        status="firing",
        labels={
            "alertname": "HighErrorRate",
            "instance": "127.0.0.1:19100",
            "job": "app",
            "service": "checkout",
            "severity": "page",
        },
        annotations={"summary": "error rate 0.9 on checkout"},
        starts_at=datetime(2026, 11, 22, 3, 57, 2, 275000, tzinfo=UTC),
        ends_at=None,  # Go's zero time
        generator_url="http://vm:19090/graph?g0.expr=bot_error_rate%7Bservice%3D%22checkout%22"
        "%7D+%3E+0.5&g0.tab=1",
    )
    assert alert.firing
    assert group["groupKey"] == '{}:{alertname="HighErrorRate", service="checkout"}'
    assert group["externalURL"] == "http://vm:19093"


def test_alertmanager_025_resolved() -> None:
    (alert,), group = parse_webhook(body("alertmanager-0.25.resolved.json"))
    assert alert.status == "resolved" and not alert.firing
    assert alert.fingerprint == "f01341052d6b3406"  # the same alert as the firing one
    assert alert.ends_at == datetime(2026, 11, 22, 3, 57, 3, 275000, tzinfo=UTC)
    assert group["status"] == "resolved"


def test_msteams_bodies_without_status_fingerprint_or_generator_url() -> None:
    (alert,), group = parse_webhook(body("prometheus-msteams.prom_post_request.json"))
    assert alert.status == "firing"  # from the group
    assert alert.fingerprint == labels_fingerprint(alert.labels)
    assert alert.generator_url == ""
    # nanoseconds in the fixture, microseconds here
    assert alert.starts_at == datetime(2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC)
    assert "truncatedAlerts" not in json.loads(body("prometheus-msteams.prom_post_request.json"))
    assert group["truncatedAlerts"] == 0

    two, _ = parse_webhook(body("prometheus-msteams.prom_post_request_2_alerts.json"))
    assert [a.name for a in two] == ["high_memory_load", "high_memory_load2"]
    assert two[0].fingerprint != two[1].fingerprint


def test_derived_fingerprint_is_stable_and_order_independent() -> None:
    a = {"alertname": "X", "service": "payment-router", "pod": "p-1"}
    b = dict(reversed(list(a.items())))
    assert labels_fingerprint(a) == labels_fingerprint(b)
    assert labels_fingerprint(a) != labels_fingerprint({**a, "pod": "p-2"})
    assert labels_fingerprint(a) == labels_fingerprint(dict(a))  # across calls, no randomness
    assert all(c in "0123456789abcdef" for c in labels_fingerprint(a))


def test_newer_keys_are_kept() -> None:
    raw = json.loads(body("alertmanager-0.25.firing.json"))
    raw["truncatedAlerts"] = 3
    raw["notification_reason"] = "new_alerts"  # hypothetical newer key
    raw["routeLabels"] = {"team": "payments"}
    raw["alerts"][0]["silenceURL"] = "http://am/silence"  # unknown per-alert keys are ignored
    alerts, group = parse_webhook(dumps(raw))
    assert len(alerts) == 1
    assert group["truncatedAlerts"] == 3
    assert group["notification_reason"] == "new_alerts"
    assert group["routeLabels"] == {"team": "payments"}


def test_alert_status_wins_over_the_group() -> None:
    raw = json.loads(body("alertmanager-0.25.firing.json"))
    resolved = copy.deepcopy(raw["alerts"][0]) | {"status": "resolved", "fingerprint": "ab"}
    raw["alerts"].append(resolved)
    alerts, _ = parse_webhook(dumps(raw))
    assert [a.status for a in alerts] == ["firing", "resolved"]


def _firing(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(body("alertmanager-0.25.firing.json"))
    raw.update(changes)
    return raw


def _alert(**changes: Any) -> dict[str, Any]:
    raw = _firing()
    raw["alerts"][0].update(changes)
    return raw


MALFORMED: list[tuple[bytes, str]] = [
    (b"", "body is empty; expected an Alertmanager webhook (JSON)"),
    (b"   \n", "body is empty; expected an Alertmanager webhook (JSON)"),
    (
        b"{not json",
        "body is not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
    ),
    (b"\xff\xfe{}", "body is not UTF-8 (byte 0)"),
    (b"[]", "body must be a JSON object, got an array"),
    (b'"4"', "body must be a JSON object, got a string"),
    (b"null", "body must be a JSON object, got null"),
    (dumps({"alerts": []}), 'version is missing; expected "4"'),
    (dumps(_firing(version="3")), "version must be \"4\", got '3'"),
    (dumps(_firing(version=4)), 'version must be "4", got a number'),
    (dumps({"version": "4"}), "alerts is missing"),
    (dumps(_firing(alerts=None)), "alerts must be an array, got null"),
    (dumps(_firing(alerts={"0": {}})), "alerts must be an array, got an object"),
    (dumps(_firing(status="pending")), 'status must be "firing" or "resolved", got \'pending\''),
    (dumps(_firing(alerts=[None])), "alerts[0] must be an object, got null"),
    (dumps(_alert(labels=None)), "alerts[0] has no labels"),
    (dumps(_alert(labels=["alertname"])), "alerts[0].labels must be an object, got an array"),
    (dumps(_alert(labels={"service": "checkout"})), "alerts[0].labels has no alertname"),
    (dumps(_alert(labels={"alertname": ""})), "alerts[0].labels has no alertname"),
    (
        dumps(_alert(labels={"alertname": "X", "n": 1})),
        "alerts[0].labels.n must be a string, got a number",
    ),
    (dumps(_alert(annotations="x")), "alerts[0].annotations must be an object, got a string"),
    (
        dumps(_alert(status="unknown")),
        'alerts[0].status must be "firing" or "resolved", got \'unknown\'',
    ),
    (dumps(_alert(fingerprint=7)), "alerts[0].fingerprint must be a string, got a number"),
    (dumps(_alert(generatorURL=False)), "alerts[0].generatorURL must be a string, got a boolean"),
    (
        dumps(_alert(startsAt="yesterday")),
        "alerts[0].startsAt is not an RFC 3339 time: 'yesterday'",
    ),
    (dumps(_alert(endsAt=5)), "alerts[0].endsAt must be an RFC 3339 time string, got a number"),
]


@pytest.mark.parametrize(("raw", "message"), MALFORMED)
def test_malformed_bodies_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedWebhook) as info:
        parse_webhook(raw)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidRequest)


def test_the_failing_alert_is_named_by_index() -> None:
    raw = _firing()
    good = raw["alerts"][0]
    raw["alerts"] = [good, good, {"labels": {"severity": "page"}}]
    with pytest.raises(MalformedWebhook, match=r"^alerts\[2\]\.labels has no alertname$"):
        parse_webhook(dumps(raw))


def test_no_status_anywhere() -> None:
    raw = _firing()
    del raw["status"]
    del raw["alerts"][0]["status"]
    with pytest.raises(MalformedWebhook, match=r"alerts\[0\] has no status"):
        parse_webhook(dumps(raw))


def test_absurd_nesting_and_huge_numbers_are_malformed_not_crashes() -> None:
    with pytest.raises(MalformedWebhook, match="not usable JSON"):
        parse_webhook(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(MalformedWebhook, match="not usable JSON"):
        parse_webhook(b'{"version": "4", "alerts": [], "n": ' + b"9" * 5000 + b"}")


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_fuzz_any_bytes(raw: bytes) -> None:
    try:
        parse_webhook(raw)
    except ValueError as exc:
        assert str(exc)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_alerts = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["labels", "annotations", "status", "fingerprint", "startsAt", "endsAt", "generatorURL"]
        ),
        _json
        | st.dictionaries(st.sampled_from(["alertname", "service", "x"]), st.text(max_size=5))
        | st.sampled_from(["firing", "resolved", "2025-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]),
    )
    | _json,
    max_size=4,
)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.sampled_from(["4", "3", 4]) | _json,
            "status": st.sampled_from(["firing", "resolved"]) | _json,
            "alerts": _alerts | _json,
            "truncatedAlerts": _json,
        },
    )
)
def test_fuzz_webhook_shaped_json(payload: dict[str, Any]) -> None:
    try:
        alerts, group = parse_webhook(dumps(payload))
    except ValueError as exc:
        assert str(exc)
    else:
        assert all(a.status in ("firing", "resolved") and a.name for a in alerts)
        assert isinstance(group["truncatedAlerts"], int)


# ── routing ──────────────────────────────────────────────────────────────────


def alert(**labels: str) -> Alert:
    labels = {"alertname": "HighErrorRate", **labels}
    return Alert(labels_fingerprint(labels), "HighErrorRate", "firing", labels, {}, None, None)


CATALOG = {
    "payment-router": default_matchers(
        "payment-router", rollout="payment-router-v2", namespace="payments"
    ),
    "fx-rates": [AlertMatcher(equal={"team": "fx", "component": "rates"})],
}


@pytest.mark.parametrize(
    ("labels", "services"),
    [
        ({"service": "payment-router"}, ["payment-router"]),
        ({"app": "payment-router"}, ["payment-router"]),
        ({"rollout": "payment-router"}, ["payment-router"]),
        ({"service": "payment-router-v2"}, ["payment-router"]),
        ({"app": "payment-router-v2", "namespace": "payments"}, ["payment-router"]),
        ({"app": "payment-router", "namespace": "staging"}, []),
        ({"job": "payment-router"}, []),
        ({"service": "checkout"}, []),
        ({"team": "fx", "component": "rates"}, ["fx-rates"]),
        ({"team": "fx"}, []),
        (
            {"team": "fx", "component": "rates", "service": "payment-router"},
            ["payment-router", "fx-rates"],
        ),
    ],
)
def test_route_alerts(labels: dict[str, str], services: list[str]) -> None:
    a = alert(**labels)
    by_service, unknown = route_alerts([a], CATALOG)
    assert sorted(by_service) == sorted(services)
    assert all(alerts == [a] for alerts in by_service.values())
    assert unknown == ([] if services else [a])


LABELS = st.dictionaries(
    st.sampled_from(["service", "app", "rollout", "namespace", "team", "component", "job"]),
    st.sampled_from(
        ["payment-router", "payment-router-v2", "payments", "staging", "fx", "rates", "x"]
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(LABELS, max_size=8))
def test_the_indexed_router_routes_as_route_alerts(many: list[dict[str, str]]) -> None:
    alerts = [alert(**labels) for labels in many]
    catalog = {**CATALOG, "everything": [AlertMatcher(equal={})]} if len(many) % 2 else CATALOG
    assert AlertRouter(catalog).route(alerts) == route_alerts(alerts, catalog)


def test_route_the_fixtures() -> None:
    alerts = [a for name in FIXTURE_FILES for a in parse_webhook(body(name))[0]]
    catalog = {"checkout": default_matchers("checkout", rollout="checkout", namespace="shop")}
    by_service, unknown = route_alerts(alerts, catalog)
    assert [a.fingerprint for a in by_service["checkout"]] == ["f01341052d6b3406"] * 2
    assert [a.name for a in unknown] == ["high_memory_load"] * 2 + ["high_memory_load2"]
    assert route_alerts(alerts, {}) == ({}, alerts)


def test_alert_signal() -> None:
    (firing,), _ = parse_webhook(body("alertmanager-0.25.firing.json"))
    (resolved,), _ = parse_webhook(body("alertmanager-0.25.resolved.json"))
    now = datetime(2026, 11, 22, 4, tzinfo=UTC)
    s = alert_signal("checkout", firing, now=now)
    assert (s.service, s.source, s.key, s.firing) == (
        "checkout",
        "alertmanager",
        "f01341052d6b3406",
        True,
    )
    assert s.summary == "HighErrorRate: error rate 0.9 on checkout"
    assert s.at == firing.starts_at and s.alert is firing
    r = alert_signal("checkout", resolved, now=now)
    assert (r.key, r.firing, r.at) == (s.key, False, resolved.ends_at)
    bare = alert(service="x")
    assert alert_signal("x", bare, now=now).summary == "HighErrorRate"
    assert alert_signal("x", bare, now=now).at == now


def test_notice_throttle() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    throttle = NoticeThrottle(timedelta(hours=1))
    assert throttle.due("HighMemory", t0)
    assert not throttle.due("HighMemory", t0 + timedelta(minutes=59))
    assert throttle.due("Other", t0 + timedelta(minutes=1))
    assert throttle.due("HighMemory", t0 + timedelta(hours=1))
    always = NoticeThrottle(timedelta(0))
    assert always.due("x", t0) and always.due("x", t0)
