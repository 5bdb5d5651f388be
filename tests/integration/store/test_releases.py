"""Releases, cleanup-ticket records, notices and leases in the store, on SQLite and a real
PostgreSQL 15 (`store_url` is parametrised like tests/integration/store/test_store.py).

- a release is recorded once: a second start of the same id (50 at once, two replicas)
  gets the first one back, never a second row;
- every field round-trips (aware UTC datetimes, phase enum, nullable ints);
- the release card's digest is kept beside the release: only releases with a thread are
  listed, `save_release` never overwrites it, it is there after a restart;
- ticket records: ensure is idempotent, updates keep the rest, dates round-trip;
- a notice is marked sent once under concurrency, and can be unmarked after a failure;
- a lease has one holder: concurrent contenders from two engines, one wins; the holder
  renews; another takes it only after it expires; release frees it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.core.model import Release, ReleasePhase
from bot.store import SqlStore, open_store
from bot.store.sql import RecordNotFound

T0 = datetime(2026, 3, 28, 23, 30, 0, 250000, tzinfo=UTC)


def _release(version: str = "1.13.0") -> Release:
    return Release(
        id=f"payment-router@{version}",
        service="payment-router",
        version=version,
        phase=ReleasePhase.STARTED,
        started_at=T0,
        clock_started_at=T0,
        source="cli",
        started_by="ci",
        owner="payments-lead@example.com",
    )


async def test_a_release_is_recorded_once_under_concurrency(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    attempts = [
        (a if i % 2 else b).create_release(replace(_release(), started_by=f"user-{i}"))
        for i in range(50)
    ]
    results = await asyncio.gather(*attempts)
    winners = [r for created, r in results if created]
    assert len(winners) == 1
    # every loser is handed the winner's record
    assert {r.started_by for _, r in results} == {winners[0].started_by}
    assert len(await a.list_releases()) == 1


async def test_release_fields_round_trip(sql_store: SqlStore) -> None:
    await sql_store.create_release(_release())
    full = replace(
        _release(),
        phase=ReleasePhase.FULLY_ROLLED_OUT,
        owner_slack="U0LEAD",
        revision=42,
        previous_version="1.12.4",
        full_rollout_at=T0 + timedelta(hours=5),
        winner="control",
        winner_at=T0 + timedelta(days=2),
        channel="C0PAYDEPLOY",
        thread_ts="1700000000.000100",
        checklist_ts="1700000000.000200",
    )
    await sql_store.save_release(full)
    got = await sql_store.get_release(full.id)
    assert got == full
    assert got is not None and got.full_rollout_at is not None
    assert got.full_rollout_at.tzinfo is not None
    with pytest.raises(RecordNotFound):
        await sql_store.save_release(_release("9.9.9"))


async def test_list_releases_filters_by_service_and_activity(sql_store: SqlStore) -> None:
    await sql_store.create_release(_release("1.13.0"))
    await sql_store.create_release(
        replace(_release("1.12.0"), started_at=T0 - timedelta(days=9), phase=ReleasePhase.ABORTED)
    )
    other = replace(_release(), id="checkout@2.0.0", service="checkout", version="2.0.0")
    await sql_store.create_release(other)
    assert [r.version for r in await sql_store.list_releases(service="payment-router")] == [
        "1.13.0",
        "1.12.0",
    ]
    active = await sql_store.list_releases(active=True)
    assert {r.id for r in active} == {"payment-router@1.13.0", "checkout@2.0.0"}


async def test_the_release_card_digest_survives_saves_and_restarts(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.create_release(_release("1.13.0"))
        await store.create_release(_release("1.12.0"))  # never got a card (no thread)
        assert await store.release_card_digest("payment-router@1.13.0") is None
        assert await store.release_card_digests() == {}
        carded = replace(_release("1.13.0"), channel="C0PAYDEPLOY", thread_ts="1700000000.1")
        await store.save_release(carded)
        assert await store.release_card_digests() == {"payment-router@1.13.0": None}
        await store.set_release_card_digest("payment-router@1.13.0", "a" * 64)
        # A release saved from a read older than the card's update keeps the digest: the
        # digest is the card's bookkeeping, not a field of the release.
        await store.save_release(replace(carded, phase=ReleasePhase.ABORTED))
        assert await store.release_card_digest("payment-router@1.13.0") == "a" * 64
        with pytest.raises(RecordNotFound):
            await store.set_release_card_digest("payment-router@9.9.9", "b" * 64)
    finally:
        await store.close()
    again = await open_store(store_url)  # a restarted rollbot: the ts and digest are there
    try:
        assert await again.release_card_digests() == {"payment-router@1.13.0": "a" * 64}
        got = await again.get_release("payment-router@1.13.0")
        assert got is not None and got.thread_ts == "1700000000.1"
        assert got.phase is ReleasePhase.ABORTED
    finally:
        await again.close()


async def test_ticket_records(sql_store: SqlStore) -> None:
    rid = "payment-router@1.13.0"
    first = await sql_store.ensure_ticket(rid, "remove-release-flag", label="l1")
    assert first.state == "pending" and first.key is None and first.provisional
    await sql_store.update_ticket(
        rid,
        "remove-release-flag",
        state="filed",
        key="PAY-1",
        url="https://jira/browse/PAY-1",
        due=date(2026, 4, 28),
        provisional=False,
        filed_at=T0,
    )
    again = await sql_store.ensure_ticket(rid, "remove-release-flag", label="other")
    assert (again.state, again.key, again.due, again.label) == (
        "filed",
        "PAY-1",
        date(2026, 4, 28),
        "l1",
    )
    assert again.filed_at == T0
    await sql_store.ensure_ticket(rid, "contract-migration", label="l2")
    assert [t.kind for t in await sql_store.tickets(rid)] == [
        "contract-migration",
        "remove-release-flag",
    ]
    with pytest.raises(RecordNotFound):
        await sql_store.update_ticket(rid, "nope", state="filed")


async def test_a_notice_is_sent_once(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    marks = await asyncio.gather(
        *[(a if i % 2 else b).mark_notice_sent("n1", release_id="r") for i in range(20)]
    )
    assert marks.count(True) == 1
    assert await a.notice_sent("n1")
    await a.unmark_notice("n1")
    assert not await b.notice_sent("n1")
    assert await b.notice_sent_at("n1") is None
    before = datetime.now(UTC)
    assert await b.mark_notice_sent("n1", release_id="r")
    at = await a.notice_sent_at("n1")
    assert at is not None and at.tzinfo is not None
    assert abs((at - before).total_seconds()) < 60


async def test_a_lease_has_one_holder(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    wins = await asyncio.gather(
        *[(a if i % 2 else b).acquire_lease("scheduler", f"replica-{i}", ttl=30) for i in range(10)]
    )
    assert wins.count(True) == 1
    holder = f"replica-{wins.index(True)}"
    assert await a.acquire_lease("scheduler", holder, ttl=30)  # renew
    assert not await b.acquire_lease("scheduler", "someone-else", ttl=30)
    found = await a.lease_holder("scheduler")
    assert found is not None and found[0] == holder
    await a.release_lease("scheduler", holder)
    assert await b.acquire_lease("scheduler", "someone-else", ttl=30)


async def test_an_expired_lease_is_taken_over(store_url: str) -> None:
    now = [T0]
    a = await open_store(store_url, clock=lambda: now[0])
    try:
        assert await a.acquire_lease("scheduler", "old", ttl=10)
        now[0] = T0 + timedelta(seconds=9)
        assert not await a.acquire_lease("scheduler", "new", ttl=10)
        now[0] = T0 + timedelta(seconds=11)
        assert await a.acquire_lease("scheduler", "new", ttl=10)
        assert not await a.acquire_lease("scheduler", "old", ttl=10)
    finally:
        await a.close()
