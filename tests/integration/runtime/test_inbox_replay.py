"""Replaying the webhook inbox (bot.runtime.inbox, bot.paging.inbox): PagerDuty deliveries
stored before their 202 but never processed are processed at start, once; other sources
are left alone; a body that no longer parses is marked, not retried for ever."""

from __future__ import annotations

import json
from typing import Any

from bot.paging.inbox import replay_pagerduty
from bot.store import SqlStore


class Paging:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[dict[str, Any]] = []
        self.fail = fail

    async def on_webhook(self, payload: dict[str, Any]) -> None:
        self.seen.append(payload)
        if self.fail:
            raise RuntimeError("card unavailable")

    async def on_workflow(self, payload: dict[str, Any]) -> None:
        self.seen.append({"workflow": payload})


async def replay(store: SqlStore, paging: Paging) -> int:
    return await replay_pagerduty(
        store=store, on_webhook=paging.on_webhook, on_workflow=paging.on_workflow
    )


async def test_pagerduty_deliveries_are_replayed_once(sql_store: SqlStore) -> None:
    event = {"event": {"id": "01", "event_type": "incident.acknowledged", "data": {}}}
    row = await sql_store.store_webhook("pagerduty", {}, json.dumps(event))
    other = await sql_store.store_webhook("alertmanager", {}, "{}")
    bad = await sql_store.store_webhook("pagerduty", {}, "{not json")
    paging = Paging()
    assert await replay(sql_store, paging) == 1
    assert paging.seen == [event]
    assert (await sql_store.get_webhook(row)).processed_at is not None  # type: ignore[union-attr]
    assert (await sql_store.get_webhook(other)).processed_at is None  # type: ignore[union-attr]
    broken = await sql_store.get_webhook(bad)
    assert broken is not None and (broken.error or "").startswith("unparseable:")
    assert await replay(sql_store, paging) == 0
    assert len(paging.seen) == 1


async def test_a_failing_replay_is_recorded_with_its_error(sql_store: SqlStore) -> None:
    row = await sql_store.store_webhook("pagerduty", {}, json.dumps({"action": "abort"}))
    assert await replay(sql_store, Paging(fail=True)) == 1
    record = await sql_store.get_webhook(row)
    assert record is not None and record.error == "RuntimeError: card unavailable"


async def test_workflow_requests_replay_as_workflows_and_events_as_events(
    sql_store: SqlStore,
) -> None:
    """The inbox keeps how a body was authenticated (its source): a bearer workflow request
    is replayed through on_workflow, a signed event through on_webhook, never crosswise."""
    event = {"event": {"id": "02", "event_type": "incident.resolved", "data": {}}}
    action = {"action": "Rollback Tier 1: abort", "incident": {}, "user": {"id": "PU1"}}
    await sql_store.store_webhook("pagerduty-workflow", {}, json.dumps(action))
    await sql_store.store_webhook("pagerduty", {}, json.dumps(event))
    paging = Paging()
    assert await replay(sql_store, paging) == 2
    assert paging.seen == [event, {"workflow": action}]
