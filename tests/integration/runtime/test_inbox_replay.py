"""Replaying the webhook inbox (bot.runtime.inbox, bot.paging.inbox): PagerDuty deliveries
stored before their 202 but never processed are processed at start, once; other sources
are left alone; a body that no longer parses is marked, not retried for ever; the rows in
flight here and the rows stored a moment ago are left alone; a temporary failure leaves
the row pending for the next round, a permanent one marks it with its error."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from bot.core.errors import Unreachable
from bot.incidents.inbox import replay_alerts
from bot.paging.inbox import replay_pagerduty
from bot.runtime.inbox import InFlight, retry_later
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


class Flaky:
    """A consumer whose first call fails as `error`, then works."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error
        self.seen: list[Any] = []

    async def __call__(self, payload: Any) -> None:
        self.seen.append(payload)
        if self.error is not None:
            error, self.error = self.error, None
            raise error


async def _pending(store: SqlStore) -> list[int]:
    return [r.id for r in await store.pending_webhooks()]


async def test_rows_in_flight_here_and_rows_too_young_are_left_alone(sql_store: SqlStore) -> None:
    """Issue 15: the leader keeps replaying; a row its receiver is processing (in flight)
    and a row stored a moment ago (not yet registered) are not processed twice."""
    busy = await sql_store.store_webhook("pagerduty", {}, json.dumps({"n": 1}))
    idle = await sql_store.store_webhook("pagerduty", {}, json.dumps({"n": 2}))
    flying = InFlight()
    flying.add(busy)
    paging = Paging()
    young = await replay_pagerduty(
        store=sql_store,
        on_webhook=paging.on_webhook,
        on_workflow=paging.on_workflow,
        skip=flying,
        min_age=timedelta(hours=1),
    )
    assert young == 0 and paging.seen == []  # both too young
    settled = await replay_pagerduty(
        store=sql_store,
        on_webhook=paging.on_webhook,
        on_workflow=paging.on_workflow,
        skip=flying,
        min_age=timedelta(0),
    )
    assert settled == 1 and paging.seen == [{"n": 2}]
    assert await _pending(sql_store) == [busy]
    assert idle not in await _pending(sql_store)


async def test_a_temporary_failure_is_retried_a_permanent_one_is_recorded(
    sql_store: SqlStore,
) -> None:
    """A row whose processing failed because a service or the database was away stays
    pending and is processed by a later round; one that failed for its own reasons is
    marked with the error, never retried."""
    temporary = await sql_store.store_webhook("alertmanager", {}, _alerts_body("A"))
    flaky = Flaky(Unreachable("Slack", "connection refused"))

    async def on_alerts(alerts: list[Any], group: dict[str, Any]) -> None:
        await flaky([a.name for a in alerts])

    assert await replay_alerts(store=sql_store, on_alerts=on_alerts) == 0
    assert await _pending(sql_store) == [temporary]  # left for the next round
    assert await replay_alerts(store=sql_store, on_alerts=on_alerts) == 1
    assert await _pending(sql_store) == []
    assert flaky.seen == [["A"], ["A"]]
    record = await sql_store.get_webhook(temporary)
    assert record is not None and record.error is None

    lost_db = OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is away"))
    assert retry_later(lost_db) and retry_later(Unreachable("Jira", "timeout"))
    assert not retry_later(RuntimeError("a bug")) and not retry_later(ValueError("bad body"))


def _alerts_body(name: str) -> str:
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "rollbot",
            "groupKey": "{}:{}",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": name, "service": "payment-router"},
                    "annotations": {"summary": name},
                    "startsAt": "2026-12-06T07:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": f"fp-{name}",
                }
            ],
        }
    )
