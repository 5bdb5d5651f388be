"""The store's codecs (`bot.store.codecs`), pure: what goes into JSON comes back the same.

- an `Outcome` (any Rollout or flag action, any zone, any finite duration, any detail)
  survives `outcome_to_json` → JSON text → `outcome_from_json`, its `at` back in UTC;
- the action values of `RolloutAction` and `FlagAction` never collide, so a value names
  one action; an unknown value, or a field missing, raises rather than guessing;
- an `Incident` and its alerts survive `incident_columns` → JSON text (for the JSON
  columns) → `incident_record`: frozensets, summaries in order as 2-tuples, UTC datetimes;
  sets are written sorted, so one set is always one text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.model import FlagAction, Incident, IncidentState, Outcome, RolloutAction
from bot.core.ports import IncidentRecord
from bot.store.codecs import (
    action_from_value,
    incident_columns,
    incident_record,
    outcome_from_json,
    outcome_to_json,
)

JSON_COLUMNS = ("firing", "seen", "summaries", "alerts")

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-9, minutes=-30))]
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
actions = st.sampled_from([*RolloutAction, *FlagAction])
keys = st.text(min_size=1, max_size=20)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@given(
    action=actions,
    actor_id=st.text(max_size=20),
    at=instants,
    verified=st.booleans(),
    seconds=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    detail=st.text(max_size=200),
)
def test_an_outcome_round_trips(
    action: RolloutAction | FlagAction,
    actor_id: str,
    at: datetime,
    verified: bool,
    seconds: float,
    detail: str,
) -> None:
    outcome = Outcome(action, actor_id, at, verified, seconds, detail)
    back = outcome_from_json(through_json(outcome_to_json(outcome)))
    assert back == outcome
    assert back.action is action and back.at.tzinfo == UTC


def test_an_outcome_is_a_small_json_object() -> None:
    at = datetime(2026, 12, 8, 14, 51, 7, 250000, tzinfo=timezone(timedelta(hours=1)))
    outcome = Outcome(RolloutAction.PROMOTE_FULL, "U1", at, True, 0.1, "done")
    assert outcome_to_json(outcome) == {
        "action": "promote-full",
        "actor_id": "U1",
        "at": "2026-12-08T13:51:07.250000+00:00",
        "verified": True,
        "seconds": 0.1,
        "detail": "done",
    }


def test_action_values_name_one_action() -> None:
    rollout = {a.value for a in RolloutAction}
    flag = {a.value for a in FlagAction}
    assert not rollout & flag
    for action in [*RolloutAction, *FlagAction]:
        assert action_from_value(action.value) is action


@pytest.mark.parametrize(
    "data",
    [
        {
            "action": "teleport",
            "actor_id": "U1",
            "at": "2026-12-08T13:51:07+00:00",
            "verified": True,
            "seconds": 1.0,
        },
        {"action": "abort", "actor_id": "U1", "verified": True, "seconds": 1.0},
        {"action": "abort", "actor_id": "U1", "at": None, "verified": True, "seconds": 1.0},
    ],
)
def test_what_is_not_an_outcome_raises(data: dict[str, Any]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        outcome_from_json(data)


@given(
    state=st.sampled_from(IncidentState),
    opened_at=instants,
    changed_at=instants,
    first_breach_at=st.none() | instants,
    firing=st.frozensets(keys, max_size=5),
    seen=st.frozensets(keys, max_size=5),
    summaries=st.lists(st.tuples(keys, st.text(max_size=40)), max_size=5).map(tuple),
    alerts=st.dictionaries(keys, st.text(max_size=40), max_size=5),
    revision=st.integers(min_value=1, max_value=2**31 - 1),
)
def test_an_incident_round_trips(
    state: IncidentState,
    opened_at: datetime,
    changed_at: datetime,
    first_breach_at: datetime | None,
    firing: frozenset[str],
    seen: frozenset[str],
    summaries: tuple[tuple[str, str], ...],
    alerts: dict[str, str],
    revision: int,
) -> None:
    incident = Incident(
        service="payment-router",
        namespace="payments",
        rollout="payment-router",
        revision=revision,
        state=state,
        opened_at=opened_at,
        changed_at=changed_at,
        firing=firing,
        seen=seen,
        first_breach_at=first_breach_at,
        summaries=summaries,
    )
    columns = incident_columns(incident, alerts)
    assert columns["card_key"] == incident.card_key
    assert columns["firing"] == sorted(firing) and columns["seen"] == sorted(seen)
    stored = {name: through_json(v) if name in JSON_COLUMNS else v for name, v in columns.items()}

    record = incident_record({**stored, "pages": 3})

    assert record == IncidentRecord(incident=incident, alerts=alerts, pages=3)
    back = record.incident
    assert isinstance(back.firing, frozenset) and isinstance(back.seen, frozenset)
    assert back.summaries == summaries
    assert all(type(pair) is tuple and len(pair) == 2 for pair in back.summaries)
    assert back.opened_at.tzinfo == UTC and back.changed_at.tzinfo == UTC
    assert back.first_breach_at is None or back.first_breach_at.tzinfo == UTC
    assert back.state is state
