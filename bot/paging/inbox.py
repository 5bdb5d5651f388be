"""PagerDuty deliveries in the webhook inbox: the two sources they are stored under (signed
v3 webhook events, and Incident Workflow requests with a Bearer secret), and their replay
by the leader (a replica that answered 2xx died before processing them)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Container
from datetime import timedelta
from typing import Any

from bot.runtime.inbox import replay_inbox

__all__ = ["SOURCE", "WORKFLOW_REPEAT", "WORKFLOW_SOURCE", "replay_pagerduty"]

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
