"""What the store writes into JSON and plain columns for values of `bot.core.model`, and
back: pure function pairs, each round-tripped by a unit test.

- `outcome_to_json` / `outcome_from_json`: a card's last `Outcome` as a small JSON object,
  `{"action": "abort", "actor_id": "U1", "at": "2026-12-08T13:51:07.250000+00:00",
  "verified": true, "seconds": 0.1, "detail": ""}`. `action` is the enum's value, read
  back as a `RolloutAction` or else a `FlagAction` (their values are distinct); `at` is
  ISO 8601 in UTC.
- `flag_state_to_json` / `flag_state_from_json`: a card's breaker as last read, a
  `FlagState` as `{"key", "project", "environment", "enabled", "provider", "updated_at"}`
  (`updated_at` ISO 8601 in UTC, or null).
- `incident_columns` / `incident_record`: an `Incident` and the alerts firing for it as the
  `incidents` row's columns, and a row's columns as an `IncidentRecord`. Sets are stored as
  sorted lists (one text for one set, whatever the hash order), `summaries` as a list of
  [key, summary] pairs in order; they come back as frozensets and a tuple of 2-tuples;
  `alert_starts` as [key, ISO 8601 UTC] pairs (NULL, before 0006: none).
  Datetimes stay datetimes: their columns are `UTCDateTime` (`bot.store.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from bot.core.model import (
    FlagAction,
    FlagState,
    Incident,
    IncidentState,
    Outcome,
    RolloutAction,
)
from bot.core.ports import IncidentRecord
from bot.store.schema import to_utc

__all__ = [
    "action_from_value",
    "flag_state_from_json",
    "flag_state_to_json",
    "incident_columns",
    "incident_record",
    "outcome_from_json",
    "outcome_to_json",
]


def outcome_to_json(outcome: Outcome) -> dict[str, Any]:
    """The outcome as a JSON object (see the module docstring)."""
    return {
        "action": outcome.action.value,
        "actor_id": outcome.actor_id,
        "at": to_utc(outcome.at).isoformat(),
        "verified": outcome.verified,
        "seconds": outcome.seconds,
        "detail": outcome.detail,
    }


def outcome_from_json(data: Mapping[str, Any]) -> Outcome:
    """The outcome `outcome_to_json` wrote. ValueError, KeyError or TypeError when `data`
    is not one (an action this build does not know, a field missing)."""
    return Outcome(
        action=action_from_value(data["action"]),
        actor_id=str(data["actor_id"]),
        at=to_utc(datetime.fromisoformat(data["at"])),
        verified=bool(data["verified"]),
        seconds=float(data["seconds"]),
        detail=str(data.get("detail", "")),
    )


def flag_state_to_json(state: FlagState) -> dict[str, Any]:
    """The breaker's state as a JSON object (see the module docstring)."""
    return {
        "key": state.key,
        "project": state.project,
        "environment": state.environment,
        "enabled": state.enabled,
        "provider": state.provider,
        "updated_at": None if state.updated_at is None else to_utc(state.updated_at).isoformat(),
    }


def flag_state_from_json(data: Mapping[str, Any]) -> FlagState:
    """The `FlagState` `flag_state_to_json` wrote; KeyError or TypeError when it is not."""
    updated = data.get("updated_at")
    return FlagState(
        key=str(data["key"]),
        project=str(data["project"]),
        environment=str(data["environment"]),
        enabled=bool(data["enabled"]),
        provider=str(data["provider"]),
        updated_at=None if updated is None else to_utc(datetime.fromisoformat(updated)),
    )


def action_from_value(value: str) -> RolloutAction | FlagAction:
    """The action whose value is `value`: a Rollout command, else a flag action."""
    try:
        return RolloutAction(value)
    except ValueError:
        return FlagAction(value)


def incident_columns(incident: Incident, alerts: Mapping[str, str]) -> dict[str, Any]:
    """The `incidents` row's columns for `incident` (all but `pages` and `updated_at`)."""
    return {
        "card_key": incident.card_key,
        "service": incident.service,
        "namespace": incident.namespace,
        "rollout": incident.rollout,
        "revision": incident.revision,
        "state": incident.state.value,
        "opened_at": incident.opened_at,
        "changed_at": incident.changed_at,
        "first_breach_at": incident.first_breach_at,
        "firing": sorted(incident.firing),
        "seen": sorted(incident.seen),
        "summaries": [[key, summary] for key, summary in incident.summaries],
        "alerts": {str(fingerprint): str(summary) for fingerprint, summary in alerts.items()},
        "alert_starts": [[key, to_utc(at).isoformat()] for key, at in incident.alert_starts],
    }


def incident_record(columns: Mapping[str, Any]) -> IncidentRecord:
    """The record of an `incidents` row (its columns by name, `pages` included)."""
    first_breach_at = columns["first_breach_at"]
    incident = Incident(
        service=columns["service"],
        namespace=columns["namespace"],
        rollout=columns["rollout"],
        revision=int(columns["revision"]),
        state=IncidentState(columns["state"]),
        opened_at=to_utc(columns["opened_at"]),
        changed_at=to_utc(columns["changed_at"]),
        firing=frozenset(str(k) for k in columns["firing"]),
        seen=frozenset(str(k) for k in columns["seen"]),
        first_breach_at=None if first_breach_at is None else to_utc(first_breach_at),
        summaries=tuple((str(key), str(summary)) for key, summary in columns["summaries"]),
        alert_starts=tuple(
            (str(key), to_utc(datetime.fromisoformat(at)))
            for key, at in columns.get("alert_starts") or ()
        ),
    )
    alerts = {str(k): str(v) for k, v in columns["alerts"].items()}
    return IncidentRecord(
        incident=incident, alerts=MappingProxyType(alerts), pages=int(columns["pages"])
    )
