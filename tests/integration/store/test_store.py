"""The store (`bot.store.SqlStore`) against real SQLite and a real PostgreSQL 15.

Aspects under test, each on both backends (`store_url` is parametrised):

- migrations: `open_store` migrates an empty database to head; again is a no-op; a SQLite
  migration answered "database is locked" (another process holding the lock past the busy
  timeout) tries again and migrates once the lock is gone; two
  replicas migrating at once do not trip over each other; the migrated schema matches the
  metadata the queries use (no autogenerate diff); `current_revision` reports head.
- URLs: sync URLs are upgraded to the async drivers.
- exactly once: 50 concurrent `claim_action` on one key, one winner; two stores (two
  engines = two replicas) racing on many keys, one winner each; losers get the winner's
  record; `finish_action` records the outcome; `running_actions(before=)` lists the claims
  left running, oldest first, and `finish_running_action` settles one only while it is
  still running (a second settle, or one after `finish_action`, writes nothing).
- one transaction per step (issue 17, counted by the engine's BEGINs): a lost claim, the
  winner's record it reads and its `duplicate` audit entry; a finished action with its
  audit entry and its epoch moved on (a card's record made at epoch 1 when it has none,
  then counted up); and none of it written when the claim does not exist. A won claim
  writes no audit entry.
- audit: appends from two stores at once stay one linear chain (contiguous seq, each
  prev_hash the previous hash, first prev_hash 64 zeros); the database refuses UPDATE and
  DELETE on the log; with the guard removed, `verify_audit` pinpoints a tampered row, a
  deleted row, a truncated tail and reordered rows, and passes on an intact chain; values
  that JSON reshapes (tuples, datetimes, floats, other time zones) still verify.
- cards: one claim wins under concurrency; the message and digest are recorded; epoch
  bumps are atomic under concurrency from two stores.
- cursors: upsert; datetimes come back aware UTC on both backends.
- webhook inbox and outbox basics: store, pending, processed; enqueue with dedup, due,
  retry with backoff, done.
- a webhook stored with its duplicate mark: a copy stores nothing; with SQLite locked by
  another connection past the busy timeout it raises and writes neither, then stores once.
- the outbox's parking: a parked item is kept with why, never pending or due again; the
  waiting ones are listed in queue order and brought forward when the destination is back.
- the outbox's backlog (/metrics): how many wait (not done, not parked, due or not) and
  how long the oldest has waited, by the store's clock; none waiting is (0, 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.core.model import AuditEntry
from bot.core.ports import ActionRecord, Claim, EpochBump
from bot.store import (
    RecordNotFound,
    SqlStore,
    async_url,
    current_revision,
    head_revision,
    open_store,
    upgrade,
)
from bot.store.schema import ZERO_HASH, metadata

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def entry(n: int, **kw: object) -> AuditEntry:
    fields: dict[str, object] = {
        "at": T0 + timedelta(seconds=n),
        "actor": f"U{n}",
        "action": "abort",
        "target": "payments/payment-router",
        "result": "succeeded",
        "before": {"phase": "Progressing", "weight": 25},
        "after": {"phase": "Degraded", "weight": 0},
        "duration_ms": 1200 + n,
        "detail": {"n": n},
    }
    fields.update(kw)
    return AuditEntry(**fields)  # type: ignore[arg-type]


async def claim(store: SqlStore, key: str, who: str) -> Claim:
    return await store.claim_action(
        key,
        service="payment-router",
        target="payments/payment-router",
        action="abort",
        actor_id=who,
        actor_name=f"name-{who}",
        source="slack",
    )


async def tamper(store: SqlStore, *statements: str) -> None:
    """Run raw SQL against the audit log, as someone with database access would."""
    async with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            await conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            await conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            await conn.exec_driver_sql(statement)


# ── migrations and URLs ────────────────────────────────────────────────────────────────


async def test_migrates_empty_database_to_head_and_matches_schema(store_url: str) -> None:
    assert current_revision(store_url) is None
    store = await open_store(store_url)
    try:
        assert await asyncio.to_thread(current_revision, store_url) == head_revision() == "0008"

        def diff(conn: sa.Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with store.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        assert await store.audit_head() == (0, ZERO_HASH)
    finally:
        await store.close()
    await upgrade(store_url)  # again: nothing to do
    assert current_revision(store_url) == "0008"


async def test_a_database_a_newer_rollbot_migrated_is_left_as_it_is(store_url: str) -> None:
    """An older replica starting during a rolling update (or rollbot rolled back) must not
    fail on a revision it does not know: it serves the database as it is."""
    store = await open_store(store_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await store.close()
    store = await open_store(store_url)  # migrate=True: nothing to do, no error
    try:
        assert await store.schema_revision() == "9999"
        assert (await store.claim_card("a/b@1", service="s", channel="#c"))[0]
    finally:
        await store.close()
    await upgrade(store_url)  # `rollbot db upgrade` too
    assert current_revision(store_url) == "9999"


async def test_replicas_migrating_at_once(store_url: str) -> None:
    stores = await asyncio.gather(open_store(store_url), open_store(store_url))
    try:
        assert current_revision(store_url) == "0008"
        assert (await stores[0].claim_card("a/b@1", service="s", channel="#c"))[0]
    finally:
        for s in stores:
            await s.close()


async def test_a_sqlite_migration_locked_out_tries_again(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock past this one's busy timeout while it
    starts: its migration is answered "database is locked", tries again, and migrates once
    the lock is gone (nothing half-done in between)."""
    path = tmp_path / "rollbot.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("BEGIN IMMEDIATE")
    released = asyncio.Event()

    async def release_later() -> None:
        await asyncio.sleep(1.0)
        holder.execute("COMMIT")
        released.set()

    releasing = asyncio.create_task(release_later())
    try:
        store = await open_store(f"sqlite:///{path}", busy_timeout=0.2)
    finally:
        await releasing
        holder.close()
    try:
        assert released.is_set()  # it could only have migrated after the lock went
        assert await asyncio.to_thread(current_revision, f"sqlite:///{path}") == head_revision()
        assert (await store.claim_card("a/b@1", service="s", channel="#c"))[0]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_sync_urls_are_upgraded_to_async_drivers(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


# ── exactly once ───────────────────────────────────────────────────────────────────────


async def test_fifty_concurrent_claims_one_winner(sql_store: SqlStore) -> None:
    claims = await asyncio.gather(*(claim(sql_store, "abort:rev7", f"U{i}") for i in range(50)))
    winners = [c for c in claims if c.won]
    assert len(winners) == 1
    winner = winners[0].record
    assert winner.status == "running" and winner.requested_at.tzinfo is not None
    for c in claims:
        assert c.record == winner


async def test_two_replicas_race_one_winner_per_key(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    keys = [f"abort:payment-router:{k}" for k in range(5)]
    calls = [
        claim(s, key, f"{name}{i}")
        for key in keys
        for i in range(5)
        for s, name in ((a, "A"), (b, "B"))
    ]
    claims = await asyncio.gather(*calls)
    for key in keys:
        mine = [c for c in claims if c.record.key == key]
        assert len(mine) == 10
        assert sum(c.won for c in mine) == 1
        winner = next(c.record for c in mine if c.won)
        assert all(c.record == winner for c in mine)


async def test_loser_is_told_who_won_and_how_it_ended(sql_store: SqlStore) -> None:
    first = await claim(sql_store, "k1", "U-alice")
    second = await claim(sql_store, "k1", "U-bob")
    assert first.won and not second.won
    assert second.record.actor_id == "U-alice"
    done = await sql_store.finish_action(
        "k1", status="succeeded", result={"verified": True, "checks": ("abort", "weight 0")}
    )
    assert done.status == "succeeded"
    assert done.result == {"verified": True, "checks": ["abort", "weight 0"]}
    assert done.finished_at is not None and done.finished_at.tzinfo == UTC
    third = await claim(sql_store, "k1", "U-carol")
    assert not third.won and third.record == done
    with pytest.raises(RecordNotFound):
        await sql_store.finish_action("nope", status="failed", result={})


@contextlib.contextmanager
def transactions(store: SqlStore) -> Iterator[list[int]]:
    """Count the transactions the store begins meanwhile (one element per BEGIN)."""
    begun: list[int] = []

    def count(_conn: object) -> None:
        begun.append(1)

    sa.event.listen(store.engine.sync_engine, "begin", count)
    try:
        yield begun
    finally:
        sa.event.remove(store.engine.sync_engine, "begin", count)


async def test_a_lost_claim_and_its_audit_entry_are_one_transaction(sql_store: SqlStore) -> None:
    def duplicate(winner: ActionRecord) -> AuditEntry:
        return entry(1, result="duplicate", actor="U-bob", detail={"winner": winner.actor_id})

    with transactions(sql_store) as begun:
        won = await sql_store.claim_action(
            "k-dup",
            service="payment-router",
            target="payments/payment-router",
            action="abort",
            actor_id="U-alice",
            actor_name="alice",
            source="slack",
            duplicate=duplicate,
        )
    assert won.won and len(begun) == 1
    assert await sql_store.audit_entries() == []  # a won claim is not audited here
    with transactions(sql_store) as begun:
        lost = await sql_store.claim_action(
            "k-dup",
            service="payment-router",
            target="payments/payment-router",
            action="abort",
            actor_id="U-bob",
            actor_name="bob",
            source="slack",
            duplicate=duplicate,
        )
    assert not lost.won and lost.record.actor_id == "U-alice"
    assert len(begun) == 1  # insert, the winner's row and the audit entry together
    (dup,) = await sql_store.audit_entries()
    assert dup.entry.result == "duplicate" and dup.entry.detail == {"winner": "U-alice"}
    assert (await sql_store.verify_audit()).ok


async def test_finish_audit_and_epoch_are_one_transaction(sql_store: SqlStore) -> None:
    bump = EpochBump("flag:payment-router:circuit", "payment-router", "#payments")
    for n in (1, 2):
        key = f"k-flip-{n}"
        await claim(sql_store, key, "U-alice")
        with transactions(sql_store) as begun:
            done = await sql_store.finish_action(
                key,
                status="succeeded",
                result={"n": n},
                audit_entry=entry(n, detail={"idempotency_key": key}),
                bump_epoch=bump,
            )
        assert len(begun) == 1
        assert done.status == "succeeded" and done.result == {"n": n}
        card = await sql_store.get_card(bump.card_key)
        assert card is not None and card.epoch == n  # made at 1, then counted up
        assert (card.service, card.channel) == ("payment-router", "#payments")
    assert [r.entry.detail for r in await sql_store.audit_entries()] == [
        {"idempotency_key": "k-flip-1"},
        {"idempotency_key": "k-flip-2"},
    ]
    # No such claim: nothing of it is written, neither the entry nor the epoch.
    with pytest.raises(RecordNotFound):
        await sql_store.finish_action(
            "nope", status="failed", result={}, audit_entry=entry(3), bump_epoch=bump
        )
    assert len(await sql_store.audit_entries()) == 2
    card = await sql_store.get_card(bump.card_key)
    assert card is not None and card.epoch == 2
    assert (await sql_store.verify_audit()).ok


async def test_claims_left_running_are_listed_and_settled_once(sql_store: SqlStore) -> None:
    await claim(sql_store, "k-old", "U-alice")
    await claim(sql_store, "k-done", "U-bob")
    await sql_store.finish_action("k-done", status="succeeded", result={})
    cut = datetime.now(UTC) + timedelta(microseconds=1)
    await claim(sql_store, "k-young", "U-carol")
    assert [r.key for r in await sql_store.running_actions(before=cut)] == ["k-old"]
    far = datetime.now(UTC) + timedelta(hours=1)
    assert [r.key for r in await sql_store.running_actions(before=far)] == ["k-old", "k-young"]

    settled = await sql_store.finish_running_action(
        "k-old", status="succeeded", result={"recovered": True}
    )
    assert settled is not None and settled.status == "succeeded"
    assert settled.result == {"recovered": True} and settled.finished_at is not None
    # Once settled (or finished by its claimant), a second settle writes nothing.
    assert await sql_store.finish_running_action("k-old", status="failed", result={}) is None
    assert await sql_store.finish_running_action("k-done", status="failed", result={}) is None
    assert await sql_store.finish_running_action("nope", status="failed", result={}) is None
    assert (await sql_store.get_action("k-old")) == settled
    assert [r.key for r in await sql_store.running_actions(before=far)] == ["k-young"]


# ── audit log ──────────────────────────────────────────────────────────────────────────


async def test_concurrent_appends_from_two_replicas_stay_linear(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    appended = await asyncio.gather(*(s.append_audit(entry(i)) for i in range(20) for s in (a, b)))
    records = await a.audit_entries()
    assert [r.seq for r in records] == list(range(1, 41))
    assert sorted(r.seq for r in appended) == list(range(1, 41))
    assert records[0].prev_hash == ZERO_HASH
    for prev, rec in itertools.pairwise(records):
        assert rec.prev_hash == prev.hash
    assert await b.audit_head() == (40, records[-1].hash)
    assert await a.verify_audit() == await b.verify_audit()
    assert (await a.verify_audit()).ok and (await a.verify_audit()).count == 40
    assert [r.seq for r in await b.audit_entries(since_seq=38)] == [39, 40]


async def test_the_database_refuses_to_change_the_log(sql_store: SqlStore) -> None:
    await sql_store.append_audit(entry(1))
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with sql_store.engine.begin() as conn:
                await conn.exec_driver_sql(statement)
    assert (await sql_store.verify_audit()).ok


@pytest.mark.parametrize(
    ("statements", "bad_seq", "reason"),
    [
        (["UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"], 3, "content"),
        (['UPDATE audit_log SET after = \'{"phase": "Healthy"}\' WHERE seq = 4'], 4, "content"),
        (["DELETE FROM audit_log WHERE seq = 2"], 2, "missing"),
        (["DELETE FROM audit_log WHERE seq = 5"], 5, "truncated"),
        (
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            ],
            2,
            "prev_hash",
        ),
    ],
    ids=["tampered-actor", "tampered-json", "deleted-row", "deleted-tail", "reordered"],
)
async def test_verify_pinpoints_tampering(
    sql_store: SqlStore, statements: list[str], bad_seq: int, reason: str
) -> None:
    for i in range(5):
        await sql_store.append_audit(entry(i))
    assert (await sql_store.verify_audit()).ok
    await tamper(sql_store, *statements)
    result = await sql_store.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert reason in result.reason


async def test_entries_round_trip_exactly_and_verify(sql_store: SqlStore) -> None:
    paris = timezone(timedelta(hours=1))
    tricky = entry(
        1,
        at=datetime(2025, 3, 1, 13, 0, 0, 5, tzinfo=paris),
        before={"weights": (10, 25), "ratio": 0.1, "big": 1e20, "when": T0, "ü": "ß"},
        detail={"nested": {"b": [1, {"z": None}], "a": True}},
        duration_ms=None,
    )
    rec = await sql_store.append_audit(tricky)
    assert rec.entry.at == datetime(2025, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert rec.entry.at.tzinfo == UTC
    assert rec.entry.before["weights"] == [10, 25]
    assert rec.entry.before["when"] == "2025-03-01T12:00:00.123456+00:00"
    [stored] = await sql_store.audit_entries()
    assert stored == rec
    assert (await sql_store.verify_audit()).ok


# ── cards ──────────────────────────────────────────────────────────────────────────────


async def test_one_card_per_revision_under_concurrency(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    key = "payments/payment-router@7"
    results = await asyncio.gather(
        *(
            s.claim_card(key, service="payment-router", channel="#payments-deploys")
            for _ in range(15)
            for s in (a, b)
        )
    )
    assert sum(won for won, _ in results) == 1
    assert all(card.ts is None and card.epoch == 0 for _, card in results)

    posted = await a.set_card_message(key, ts="1700000000.000100", digest="d1")
    assert posted.ts == "1700000000.000100" and posted.digest == "d1"
    won, again = await b.claim_card(key, service="payment-router", channel="#payments-deploys")
    assert not won and again == posted
    await b.set_card_digest(key, "d2")
    assert (await a.get_card(key)).digest == "d2"  # type: ignore[union-attr]
    assert await a.get_card("payments/other@1") is None
    with pytest.raises(RecordNotFound):
        await a.bump_card_epoch("payments/other@1")


async def test_epoch_bumps_are_atomic(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    await a.claim_card("ns/r@1", service="s", channel="#c")
    epochs = await asyncio.gather(*(s.bump_card_epoch("ns/r@1") for _ in range(20) for s in (a, b)))
    assert sorted(epochs) == list(range(1, 41))
    assert (await b.get_card("ns/r@1")).epoch == 40  # type: ignore[union-attr]


# ── cursors and datetimes ──────────────────────────────────────────────────────────────


async def test_cursors_upsert(sql_store: SqlStore) -> None:
    assert await sql_store.get_cursor("rollouts", "payments") is None
    await sql_store.set_cursor("rollouts", "payments", "100")
    await sql_store.set_cursor("rollouts", "payments", "105")
    await sql_store.set_cursor("analysisruns", "payments", "7")
    assert await sql_store.get_cursor("rollouts", "payments") == "105"
    assert await sql_store.get_cursor("analysisruns", "payments") == "7"
    assert await sql_store.get_cursor("rollouts", "other") is None


async def test_datetimes_are_aware_utc_both_ways(sql_store: SqlStore) -> None:
    tokyo = datetime(2025, 3, 1, 21, 0, 0, 999, tzinfo=timezone(timedelta(hours=9)))
    clocked = SqlStore(sql_store.engine, clock=lambda: tokyo)  # shares the engine
    won = await claim(clocked, "k", "U1")
    stored = (await claim(sql_store, "k", "U2")).record
    assert stored.requested_at == tokyo == won.record.requested_at
    assert stored.requested_at.utcoffset() == timedelta(0)
    assert stored.requested_at.tzinfo == UTC
    naive = await sql_store.append_audit(entry(1, at=datetime(2025, 1, 1, 8, 30)))
    assert naive.entry.at == datetime(2025, 1, 1, 8, 30, tzinfo=UTC)


# ── webhook inbox and outbox ───────────────────────────────────────────────────────────


async def test_webhook_inbox(sql_store: SqlStore) -> None:
    body = b'{"version":"4","status":"firing","alerts":[]}'
    first = await sql_store.store_webhook(
        "alertmanager", {"content-type": "application/json"}, body
    )
    second = await sql_store.store_webhook("pagerduty", {"x-pagerduty-signature": "v1=ab"}, "{}")
    pending = await sql_store.pending_webhooks()
    assert [w.id for w in pending] == [first, second]
    assert pending[0].body == body.decode() and pending[0].headers["content-type"]
    assert pending[0].received_at.tzinfo == UTC
    await sql_store.mark_webhook_processed(first)
    await sql_store.mark_webhook_processed(second, error="bad signature")
    assert await sql_store.pending_webhooks() == []
    failed = await sql_store.get_webhook(second)
    assert failed is not None and failed.error == "bad signature" and failed.processed_at
    with pytest.raises(RecordNotFound):
        await sql_store.mark_webhook_processed(999_999)


async def test_outbox(sql_store: SqlStore) -> None:
    now = datetime.now(UTC)
    assert await sql_store.enqueue("slack.post", {"channel": "#c", "text": "hi"}, "post:1")
    assert not await sql_store.enqueue("slack.post", {"channel": "#c", "text": "hi"}, "post:1")
    assert await sql_store.enqueue("pd.note", {"incident": "P1"}, None)
    assert await sql_store.enqueue("pd.note", {"incident": "P1"}, None)
    later = await sql_store.enqueue("jira.create", {}, "j:1", not_before=now + timedelta(hours=1))
    assert later

    due = await sql_store.due_outbox(now + timedelta(seconds=5), limit=10)
    assert [i.kind for i in due] == ["slack.post", "pd.note", "pd.note"]
    assert due[0].payload == {"channel": "#c", "text": "hi"} and due[0].attempts == 0
    assert len(await sql_store.due_outbox(now + timedelta(seconds=5), limit=2)) == 2

    await sql_store.outbox_retry(due[0].id, "429 Retry-After 30", now + timedelta(seconds=30))
    await sql_store.outbox_done(due[1].id)
    due_now = await sql_store.due_outbox(now + timedelta(seconds=5), limit=10)
    assert [i.id for i in due_now] == [due[2].id]
    retried = await sql_store.get_outbox(due[0].id)
    assert retried is not None and retried.attempts == 1
    assert retried.last_error == "429 Retry-After 30"
    assert retried.next_attempt_at == now + timedelta(seconds=30)
    later_due = await sql_store.due_outbox(now + timedelta(hours=2), limit=10)
    assert {i.kind for i in later_due} == {"slack.post", "pd.note", "jira.create"}
    with pytest.raises(RecordNotFound):
        await sql_store.outbox_done(999_999)


async def test_webhook_stored_once_with_its_mark(sql_store: SqlStore) -> None:
    row = await sql_store.store_webhook_once("pagerduty", {}, "{}", seen="pd-webhook:event:E1")
    assert row is not None
    copy = await sql_store.store_webhook_once("pagerduty", {}, "{}", seen="pd-webhook:event:E1")
    assert copy is None
    assert await sql_store.notice_sent("pd-webhook:event:E1")
    window = timedelta(minutes=2)
    digest = "pd-webhook:body:abc"
    flow = await sql_store.store_webhook_once(
        "pagerduty-workflow", {}, b'{"action": "abort"}', seen=digest, forget_after=window
    )
    assert flow is not None
    again = await sql_store.store_webhook_once(
        "pagerduty-workflow", {}, b'{"action": "abort"}', seen=digest, forget_after=window
    )
    assert again is None
    assert [w.id for w in await sql_store.pending_webhooks()] == [row, flow]


async def test_webhook_once_writes_neither_while_sqlite_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite:///{path}", busy_timeout=0.2)
    try:
        lock = sqlite3.connect(path, isolation_level=None, timeout=5)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                await store.store_webhook_once("pagerduty", {}, "{}", seen="pd-webhook:event:E2")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert not await store.notice_sent("pd-webhook:event:E2")
        assert await store.pending_webhooks() == []
        row = await store.store_webhook_once("pagerduty", {}, "{}", seen="pd-webhook:event:E2")
        assert row is not None and [w.id for w in await store.pending_webhooks()] == [row]
    finally:
        await store.close()


async def test_outbox_parking_and_bringing_forward(sql_store: SqlStore) -> None:
    now = datetime.now(UTC)
    for name in ("a", "b", "c"):
        later = now + timedelta(hours=1) if name == "b" else None
        assert await sql_store.enqueue("pd.event", {"n": name}, f"e:{name}", not_before=later)
    pending = await sql_store.pending_outbox()
    assert [i.payload["n"] for i in pending] == ["a", "b", "c"]  # queue order, due or not
    a = pending[0]
    await sql_store.outbox_park(a.id, "refused: HTTP 400 Invalid routing key")
    assert [i.payload["n"] for i in await sql_store.pending_outbox()] == ["b", "c"]
    parked = await sql_store.parked_outbox()
    assert [i.id for i in parked] == [a.id]
    assert parked[0].attempts == 1
    assert parked[0].last_error == "refused: HTTP 400 Invalid routing key"
    assert a.id not in {i.id for i in await sql_store.due_outbox(now + timedelta(days=365))}
    assert await sql_store.outbox_due_now(now + timedelta(seconds=1)) == 1  # b; c was due
    due = await sql_store.due_outbox(now + timedelta(seconds=1))
    assert {i.payload["n"] for i in due} == {"b", "c"}
    assert [i.id for i in await sql_store.parked_outbox()] == [a.id]  # parked stays parked


async def test_the_outbox_backlog_counts_the_waiting_and_ages_the_oldest(
    sql_store: SqlStore,
) -> None:
    t0 = datetime(2026, 4, 28, 9, 0, tzinfo=UTC)
    now = [t0]
    store = SqlStore(sql_store.engine, clock=lambda: now[0])  # shares the engine
    assert await store.outbox_backlog() == (0, 0.0)
    for name in ("a", "b", "c", "d"):
        assert await store.enqueue("pd.event", {"n": name}, f"backlog:{name}")
        now[0] += timedelta(seconds=10)
    a, b, c, d = await store.pending_outbox()
    await store.outbox_park(a.id, "refused: HTTP 400")  # parked: not waiting
    await store.outbox_done(b.id)
    await store.outbox_retry(c.id, "HTTP 503", now[0] + timedelta(hours=1))  # waits, not due
    now[0] = t0 + timedelta(minutes=5)
    assert await store.outbox_backlog() == (2, 5 * 60 - 20)  # c (queued at +20 s) and d
    await store.outbox_done(c.id)
    await store.outbox_done(d.id)
    assert await store.outbox_backlog() == (0, 0.0)
