"""Alertmanager webhooks as Alertmanager 0.25 sends them (see the real capture in
tests/fixtures/alertmanager/alertmanager-0.25.firing.json), for drills and tests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx

ZERO_TIME = "0001-01-01T00:00:00Z"


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(
    name: str,
    *,
    service: str,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    summary: str = "",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """One alert of a webhook body; its fingerprint is stable for the same labels."""
    all_labels = {"alertname": name, "service": service, "severity": "page", **(labels or {})}
    fingerprint = hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()[:16]
    start = starts_at or datetime.now(UTC)
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": summary or f"{name} on {service}"},
        "startsAt": _ts(start),
        "endsAt": _ts(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": f"http://prometheus.local/graph?g0.expr={name}&g0.tab=1",
        "fingerprint": fingerprint,
    }


def webhook(alerts: list[dict[str, Any]], *, receiver: str = "rollbot") -> dict[str, Any]:
    """A version-4 body grouping `alerts` (status: firing while any alert fires)."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    group = {k: common[k] for k in ("alertname", "service") if k in common}
    return {
        "receiver": receiver,
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group.items()) + "}",
        "truncatedAlerts": 0,
    }


async def send(
    url: str, token: str | None, body: dict[str, Any], *, client: httpx.AsyncClient | None = None
) -> httpx.Response:
    """POST a webhook to rollbot as Alertmanager does (`Authorization: Bearer …`)."""
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if client is not None:
        return await client.post(url, content=json.dumps(body), headers=headers)
    async with httpx.AsyncClient(timeout=10) as own:
        return await own.post(url, content=json.dumps(body), headers=headers)
