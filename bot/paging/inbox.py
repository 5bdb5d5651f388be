"""PagerDuty deliveries in the webhook inbox: the two sources they are stored under (signed
v3 webhook events, and Incident Workflow requests with a Bearer secret), and their replay
by the leader (a replica that answered 2xx died before processing them)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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
    *, store: Any, on_webhook: Process, on_workflow: Process, limit: int = 100
) -> int:
    """Process PagerDuty deliveries stored but never processed (the process died):
    signed events by `on_webhook` (`PagingEngine`), workflow requests by `on_workflow`
    (`PagerDutyActions`)."""
    events = await replay_inbox(store, SOURCE, parse=json.loads, process=on_webhook, limit=limit)
    workflows = await replay_inbox(
        store, WORKFLOW_SOURCE, parse=json.loads, process=on_workflow, limit=limit
    )
    return events + workflows
