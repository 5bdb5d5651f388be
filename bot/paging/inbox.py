"""PagerDuty deliveries in the webhook inbox: the two sources they are stored under (signed
v3 webhook events, and Incident Workflow requests with a Bearer secret), their replay by
the leader (a replica that answered 2xx died before processing them), and whether a
delivery may tell of a person's doing (`by_a_person`: the on-call cache is dropped then)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Container
from datetime import timedelta
from typing import Any

from bot.runtime.inbox import replay_inbox

__all__ = ["SOURCE", "WORKFLOW_REPEAT", "WORKFLOW_SOURCE", "by_a_person", "replay_pagerduty"]

SOURCE = "pagerduty"
WORKFLOW_SOURCE = "pagerduty-workflow"
#: How long an identical workflow request counts as a copy of the first (PagerDuty's own
#: retries of a failed POST come within this); after it, the same action runs again.
WORKFLOW_REPEAT = timedelta(minutes=2)


Process = Callable[[dict[str, Any]], Awaitable[None]]


async def replay_pagerduty(
    *,
    store: Any,
    on_webhook: Process,
    on_workflow: Process,
    limit: int = 100,
    skip: Container[int] = (),
    min_age: timedelta = timedelta(0),
) -> int:
    """Process PagerDuty deliveries stored but never processed (the process died, or the
    work failed): signed events by `on_webhook` (`PagingEngine`), workflow requests by
    `on_workflow` (`PagerDutyActions`); `skip`, `min_age`: see `replay_inbox`."""
    kw: dict[str, Any] = {"limit": limit, "skip": skip, "min_age": min_age, "parse": json.loads}
    events = await replay_inbox(store, SOURCE, process=on_webhook, **kw)
    workflows = await replay_inbox(store, WORKFLOW_SOURCE, process=on_workflow, **kw)
    return events + workflows


def by_a_person(payload: dict[str, Any], rollbot_email: str | None) -> bool:
    """Whether a signed v3 delivery may tell of something a person did (so who is on call
    may have changed with it): not when its agent is an integration (an Events API
    acknowledge or resolve, rollbot's own coming back, or a monitor's trigger), nor for
    rollbot's own notes (their text starts ``rollbot:``, as `bot.paging.engine` writes
    them, or PagerDuty names rollbot's REST user, `rollbot_email`, as their agent). A
    delivery that names no agent may."""
    event = payload.get("event")
    if not isinstance(event, dict):
        return True
    agent = event.get("agent")
    if not isinstance(agent, dict):
        return True
    if "integration" in str(agent.get("type", "")):
        return False
    data = event.get("data")
    note = str(data.get("content") or "") if isinstance(data, dict) else ""
    if event.get("event_type") == "incident.annotated" and note.startswith("rollbot:"):
        return False
    email = str(agent.get("email") or "").lower()
    return not (rollbot_email and email == rollbot_email.lower())
