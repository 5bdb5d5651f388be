"""Alertmanager webhooks read as `Alert`s, and alerts routed to the services they are about.

Pure: bytes in, model objects out; the catalog's matchers come in as plain data.

    parse_webhook(body)                 -> (alerts, group)     MalformedWebhook when unusable
    route_alerts(alerts, matchers)      -> (by_service, unknown)
    AlertRouter(matchers).route(alerts) -> the same, the matchers indexed once (storms)
    default_matchers(service, …)        -> the matchers used when a service declares none
    alert_signal(service, alert, now)   -> Signal              (what the incident engine reads)
    NoticeThrottle                      -> at most one notice per alert name per interval

The payload is Alertmanager's webhook version 4 (`notify/webhook/webhook.go`, unchanged
since 0.x apart from added keys). Tolerated differences between senders:

- `truncatedAlerts` (0.22+), `notification_reason` and `routeLabels` (newer) may be absent;
- per alert, `status`, `fingerprint` and `generatorURL` may be absent (the
  prometheus-msteams test bodies lack them): the status then comes from the group's, the
  fingerprint from a stable hash of the sorted labels;
- `endsAt`/`startsAt` of `0001-01-01T00:00:00Z` (Go's zero time) mean "not set"; fractional
  seconds may have nanosecond precision.

Everything else that makes a body unusable raises `MalformedWebhook` (a `ValueError`) with a
message naming exactly what is wrong and where (`alerts[3].labels has no alertname`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.errors import InvalidRequest
from bot.core.model import Alert, Signal
from bot.core.payloads import MalformedBody, kind, parse_json_object

WEBHOOK_VERSION = "4"
STATUSES = ("firing", "resolved")
_ZERO_TIME_PREFIX = "0001-01-01"


class MalformedWebhook(InvalidRequest, ValueError):
    """The webhook body cannot be used; the message says what is wrong (for a 400)."""


# ── parsing ──────────────────────────────────────────────────────────────────


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit fingerprint of a label set (for senders that send none)."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _string_map(value: Any, where: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if value is None:
        raise MalformedWebhook(f"{where} is missing")
    if not isinstance(value, dict):
        raise MalformedWebhook(f"{where} must be an object, got {kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise MalformedWebhook(f"{where}.{key} must be a string, got {kind(item)}")
    return dict(value)


def _time(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedWebhook(f"{where} must be an RFC 3339 time string, got {kind(value)}")
    if value.startswith(_ZERO_TIME_PREFIX):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedWebhook(f"{where} is not an RFC 3339 time: {value[:64]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _status(value: Any, where: str) -> str:
    if value not in STATUSES:
        shown = repr(value[:32]) if isinstance(value, str) else kind(value)
        raise MalformedWebhook(f'{where} must be "firing" or "resolved", got {shown}')
    return str(value)


def _alert(raw: Any, index: int, group_status: str | None) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise MalformedWebhook(f"{where} must be an object, got {kind(raw)}")
    if raw.get("labels") is None:
        raise MalformedWebhook(f"{where} has no labels")
    labels = _string_map(raw.get("labels"), f"{where}.labels", required=True)
    name = labels.get("alertname", "")
    if not name:
        raise MalformedWebhook(f"{where}.labels has no alertname")
    annotations = _string_map(raw.get("annotations"), f"{where}.annotations", required=False)
    if raw.get("status") is not None:
        status = _status(raw.get("status"), f"{where}.status")
    elif group_status is not None:
        status = group_status
    else:
        raise MalformedWebhook(f"{where} has no status, and neither has the group")
    fingerprint = raw.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise MalformedWebhook(f"{where}.fingerprint must be a string, got {kind(fingerprint)}")
    generator_url = raw.get("generatorURL")
    if generator_url is not None and not isinstance(generator_url, str):
        raise MalformedWebhook(f"{where}.generatorURL must be a string, got {kind(generator_url)}")
    return Alert(
        fingerprint=fingerprint or labels_fingerprint(labels),
        name=name,
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=_time(raw.get("startsAt"), f"{where}.startsAt"),
        ends_at=_time(raw.get("endsAt"), f"{where}.endsAt"),
        generator_url=generator_url or "",
    )


def parse_webhook(body: bytes) -> tuple[list[Alert], dict[str, Any]]:
    """Read an Alertmanager webhook body (version 4).

    Returns the alerts in payload order and the group: every top-level key except
    `alerts`, with `truncatedAlerts` defaulting to 0. Raises `MalformedWebhook`.
    """
    try:
        payload = parse_json_object(body, expected="an Alertmanager webhook (JSON)")
    except MalformedBody as exc:
        raise MalformedWebhook(exc.message) from None
    version = payload.get("version")
    if version is None:
        raise MalformedWebhook('version is missing; expected "4"')
    if version != WEBHOOK_VERSION:
        shown = repr(version[:16]) if isinstance(version, str) else kind(version)
        raise MalformedWebhook(f'version must be "4", got {shown}')
    if "alerts" not in payload:
        raise MalformedWebhook("alerts is missing")
    raw_alerts = payload["alerts"]
    if not isinstance(raw_alerts, list):
        raise MalformedWebhook(f"alerts must be an array, got {kind(raw_alerts)}")
    group_status = None
    if payload.get("status") is not None:
        group_status = _status(payload.get("status"), "status")
    alerts = [_alert(raw, i, group_status) for i, raw in enumerate(raw_alerts)]
    truncated = payload.get("truncatedAlerts", 0)
    group = {key: value for key, value in payload.items() if key != "alerts"}
    group["truncatedAlerts"] = truncated if isinstance(truncated, int) else 0
    return alerts, group


# ── routing ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class AlertMatcher:
    """Labels an alert must carry to be about a service.

    `equal`: every label must be present and equal. `equal_if_present`: a label the alert
    may lack, but must equal when it has it (the default `namespace` check).
    """

    equal: Mapping[str, str]
    equal_if_present: Mapping[str, str] = field(default_factory=dict)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.equal.items()) and all(
            labels.get(k, v) == v for k, v in self.equal_if_present.items()
        )


def default_matchers(service: str, *, rollout: str, namespace: str) -> list[AlertMatcher]:
    """Label `service`, `app` or `rollout` equal to the service's name or its Rollout's
    name; and `namespace`, when the alert has one, equal to the service's namespace."""
    return [
        AlertMatcher(equal={label: value}, equal_if_present={"namespace": namespace})
        for label in ("service", "app", "rollout")
        for value in dict.fromkeys((service, rollout))
    ]


def route_alerts(
    alerts: Sequence[Alert], catalog_matchers: Mapping[str, Sequence[AlertMatcher]]
) -> tuple[dict[str, list[Alert]], list[Alert]]:
    """Which service each alert is about (any one of its matchers matching is enough).

    An alert that matches several services is routed to each of them; one that matches
    none is returned in `unknown`. Order within each list is the order of `alerts`.
    """
    by_service: dict[str, list[Alert]] = {}
    unknown: list[Alert] = []
    for alert in alerts:
        hit = False
        for service, matchers in catalog_matchers.items():
            if any(m.matches(alert.labels) for m in matchers):
                by_service.setdefault(service, []).append(alert)
                hit = True
        if not hit:
            unknown.append(alert)
    return by_service, unknown


class AlertRouter:
    """`route_alerts` over matchers indexed once: an alert is checked against the matchers
    that name one of its label values (each matcher filed under one of its `equal` pairs),
    not against the whole catalog. Same answer, same order; what an alert storm of
    thousands of alerts across a catalog of hundreds of services needs."""

    def __init__(self, catalog_matchers: Mapping[str, Sequence[AlertMatcher]]) -> None:
        self._order = {service: i for i, service in enumerate(catalog_matchers)}
        self._index: dict[str, dict[str, list[tuple[str, AlertMatcher]]]] = {}
        self._every: list[tuple[str, AlertMatcher]] = []  # no `equal`: checked every time
        for service, matchers in catalog_matchers.items():
            for matcher in matchers:
                if matcher.equal:
                    label, value = min(matcher.equal.items())
                    by_value = self._index.setdefault(label, {})
                    by_value.setdefault(value, []).append((service, matcher))
                else:
                    self._every.append((service, matcher))

    def services(self, labels: Mapping[str, str]) -> list[str]:
        """The services an alert with `labels` is about, in catalog order."""
        hits: set[str] = set()
        for label, by_value in self._index.items():
            value = labels.get(label)
            if value is None:
                continue
            for service, matcher in by_value.get(value, ()):
                if service not in hits and matcher.matches(labels):
                    hits.add(service)
        for service, matcher in self._every:
            if service not in hits and matcher.matches(labels):
                hits.add(service)
        return sorted(hits, key=self._order.__getitem__)

    def route(self, alerts: Sequence[Alert]) -> tuple[dict[str, list[Alert]], list[Alert]]:
        """As `route_alerts(alerts, catalog_matchers)`."""
        by_service: dict[str, list[Alert]] = {}
        unknown: list[Alert] = []
        for alert in alerts:
            services = self.services(alert.labels)
            for service in services:
                by_service.setdefault(service, []).append(alert)
            if not services:
                unknown.append(alert)
        return by_service, unknown


def alert_signal(service: str, alert: Alert, *, now: datetime) -> Signal:
    """The incident engine's view of one alert (keyed by its fingerprint)."""
    detail = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    summary = f"{alert.name}: {detail}" if detail else alert.name
    at = alert.starts_at if alert.firing else alert.ends_at
    return Signal(
        service=service,
        source="alertmanager",
        key=alert.fingerprint,
        firing=alert.firing,
        summary=summary,
        at=at or now,
        alert=alert,
    )


@dataclass
class NoticeThrottle:
    """At most one notice per key (an unknown alert's name) per `interval`.

    In memory, per replica: after a restart a misrouted alert is reported once more.
    """

    interval: timedelta
    _last: dict[str, datetime] = field(default_factory=dict)

    def due(self, key: str, now: datetime) -> bool:
        """True (and remembered) when no notice for `key` went out within the interval."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        return True
