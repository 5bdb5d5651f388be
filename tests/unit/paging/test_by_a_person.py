"""`bot.paging.inbox.by_a_person`: which signed PagerDuty deliveries drop the on-call cache.

Aspects under test: an event a user caused, and one that names no agent (a ping, an
escalation on timeout), may tell of people (the cache is dropped); an integration's event
(rollbot's own acknowledge or resolve through the Events API, a monitor's trigger) and
rollbot's own notes (by their `rollbot:` text, or by its REST user's email when PagerDuty
names it) do not; a body of an unexpected shape may.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.paging.inbox import by_a_person

ROLLBOT = "rollbot@example.com"
USER = {"id": "PUSER1", "type": "user_reference", "summary": "Pat"}
EVENTS_API = {"id": "PINT1", "type": "inbound_integration_reference", "summary": "rollbot"}


def event(kind: str, agent: Any = None, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "01E", "event_type": kind, "data": {"type": "incident", **data}}
    if agent is not None:
        body["agent"] = agent
    return {"event": body}


@pytest.mark.parametrize(
    "payload",
    [
        event("incident.acknowledged", USER),
        event("incident.reassigned", USER),
        event("incident.annotated", USER, content="handing over to Sam"),
        event("incident.escalated"),  # on timeout: no agent
        {"event": {"id": "01P", "event_type": "pagey.ping"}},
        {"event": "not an object"},
        {},
    ],
)
def test_may_tell_of_people(payload: dict[str, Any]) -> None:
    assert by_a_person(payload, ROLLBOT)


@pytest.mark.parametrize(
    "payload",
    [
        event("incident.acknowledged", EVENTS_API),  # rollbot's own, coming back
        event("incident.resolved", EVENTS_API),
        event("incident.triggered", {"type": "service_integration_reference"}),
        event("incident.annotated", USER, content="rollbot: abort by Pat: succeeded"),
        event("incident.annotated", {**USER, "email": "RollBot@example.com"}, content="x"),
    ],
)
def test_integrations_and_rollbots_own_notes_do_not(payload: dict[str, Any]) -> None:
    assert not by_a_person(payload, ROLLBOT)


def test_without_rollbots_email_only_its_notes_text_tells_them_apart() -> None:
    assert by_a_person(event("incident.annotated", {**USER, "email": ROLLBOT}, content="x"), None)
    assert not by_a_person(event("incident.annotated", USER, content="rollbot: retry"), None)
