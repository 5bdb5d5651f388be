"""What lets any replica act on a card while the leader alone edits it (migration 0006),
on SQLite and a real PostgreSQL.

Aspects under test:
- the gate is kept as written, and cleared with None; a card that does not exist is
  RecordNotFound;
- a breaker is kept on every card of its service (and only its service's), read back as
  the same `FlagState`; with `mark_dirty` those cards are marked for the leader;
- `take_dirty_cards` with nothing marked writes nothing: it answers at once while another
  connection holds SQLite's write lock;
- `take_dirty_cards` takes each mark once: a second call finds nothing, a mark set after
  it is taken by the next one; two replicas taking at once get each mark exactly once;
- an action's record (outcome, gate, the next epoch, the leader's mark when asked) is one
  statement returning the card as written;
- a breaker this build cannot read is logged and read as unknown, not an error;
- migration 0006 goes down to 0005 (the three columns dropped, the cards kept) and up
  again to a schema equal to the models.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.core.model import FlagState, Outcome, RolloutAction
from bot.store import RecordNotFound, SqlStore, current_revision, open_store
from bot.store.migrate import downgrade
from bot.store.schema import cards
from tests.integration.store.migrations import upgraded

pytestmark = pytest.mark.timeout(60)

GATE = {"acting": None, "explaining": {"action": "abort", "revision": 7, "line": "Degraded"}}
OPEN = FlagState(
    "payments.circuit", "default", "production", True, "unleash", datetime(2026, 12, 6, tzinfo=UTC)
)


async def _cards(store: SqlStore, *keys: tuple[str, str]) -> None:
    for key, service in keys:
        await store.claim_card(key, service=service, channel="#c")


async def test_the_gate_is_kept_and_cleared(sql_store: SqlStore) -> None:
    store = sql_store
    await _cards(store, ("ns/r@7", "s"))
    await store.set_card_gate("ns/r@7", GATE)
    card = await store.get_card("ns/r@7")
    assert card is not None and card.gate == GATE
    await store.set_card_gate("ns/r@7", None)
    card = await store.get_card("ns/r@7")
    assert card is not None and card.gate is None
    with pytest.raises(RecordNotFound):
        await store.set_card_gate("ns/none@1", GATE)


async def test_a_breaker_is_kept_on_its_service_s_cards_and_marks_them(sql_store: SqlStore) -> None:
    store = sql_store
    await _cards(store, ("ns/r@7", "s"), ("ns/r@8", "s"), ("ns/o@1", "other"))
    assert await store.set_service_circuit("s", OPEN) == ["ns/r@7", "ns/r@8"]
    for key in ("ns/r@7", "ns/r@8"):
        card = await store.get_card(key)
        assert card is not None and card.circuit == OPEN
    other = await store.get_card("ns/o@1")
    assert other is not None and other.circuit is None
    assert await store.take_dirty_cards() == []  # kept, not marked
    await store.set_service_circuit("s", OPEN, mark_dirty=True)
    assert await store.take_dirty_cards() == ["ns/r@7", "ns/r@8"]


async def test_each_mark_is_taken_once(sql_store: SqlStore) -> None:
    store = sql_store
    await _cards(store, ("ns/r@7", "s"), ("ns/r@8", "s"))
    await store.mark_card_dirty("ns/r@7")
    assert await store.take_dirty_cards() == ["ns/r@7"]
    assert await store.take_dirty_cards() == []
    await store.mark_card_dirty("ns/r@8")
    await store.mark_card_dirty("ns/r@8")  # twice before a take: one render
    assert await store.take_dirty_cards() == ["ns/r@8"]
    with pytest.raises(RecordNotFound):
        await store.mark_card_dirty("ns/none@1")


async def test_two_replicas_taking_at_once_get_each_mark_once(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    keys = [f"ns/r@{n}" for n in range(40)]
    await _cards(a, *((k, "s") for k in keys))
    for key in keys:
        await a.mark_card_dirty(key)
    taken = await asyncio.gather(*(s.take_dirty_cards() for s in (a, b, a, b)))
    assert sorted(k for batch in taken for k in batch) == sorted(keys)


async def test_an_unreadable_breaker_is_unknown(
    sql_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = sql_store
    await _cards(store, ("ns/r@7", "s"))
    async with store.engine.begin() as conn:
        await conn.execute(
            cards.update().where(cards.c.card_key == "ns/r@7").values(circuit={"key": "k"})
        )
    with caplog.at_level(logging.WARNING, logger="bot.store.cards"):
        card = await store.get_card("ns/r@7")
    assert card is not None and card.circuit is None
    assert "breaker unreadable" in caplog.text


async def test_migration_0006_goes_down_and_up_again(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.claim_card("ns/r@1", service="s", channel="#c")
        await store.set_card_gate("ns/r@1", GATE)
        await store.mark_card_dirty("ns/r@1")
    finally:
        await store.close()

    await downgrade(store_url, "0005")
    assert await asyncio.to_thread(current_revision, store_url) == "0005"
    store = await open_store(store_url, migrate=False)
    try:

        def columns(conn: sa.Connection) -> list[str]:
            return [c["name"] for c in sa.inspect(conn).get_columns("cards")]

        async with store.engine.connect() as conn:
            names = await conn.run_sync(columns)
            keys = (await conn.execute(sa.text("SELECT card_key FROM cards"))).scalars().all()
        assert not {"gate", "circuit", "dirty_at"} & set(names)
        assert keys == ["ns/r@1"]
    finally:
        await store.close()

    async with upgraded(store_url) as store:
        card = await store.get_card("ns/r@1")
        assert card is not None and card.gate is None and card.circuit is None
        assert await store.take_dirty_cards() == []


async def test_an_action_s_record_is_one_statement(sql_store: SqlStore) -> None:
    store = sql_store
    await _cards(store, ("ns/r@7", "s"))
    done = Outcome(RolloutAction.ABORT, "U0ONCALL", datetime(2026, 12, 6, 9, tzinfo=UTC), True, 0.2)
    card = await store.record_card_action("ns/r@7", outcome=done, gate=GATE)
    assert (card.epoch, card.outcome, card.gate) == (1, done, GATE)
    assert await store.get_card("ns/r@7") == card
    assert await store.take_dirty_cards() == []
    card = await store.record_card_action("ns/r@7", outcome=done, gate=None, mark_dirty=True)
    assert (card.epoch, card.gate) == (2, None)
    assert await store.take_dirty_cards() == ["ns/r@7"]
    with pytest.raises(RecordNotFound):
        await store.record_card_action("ns/none@1", outcome=done, gate=None)


async def test_asking_with_nothing_marked_writes_nothing(tmp_path: Path) -> None:
    """The leader asks twice a second: with nothing marked it must not take SQLite's write
    lock (an UPDATE takes it even when it matches no row), so it neither waits behind
    another writer nor holds one up."""
    path = tmp_path / "rollbot.db"
    store = await open_store(f"sqlite:///{path}", busy_timeout=5.0)
    try:
        await _cards(store, ("ns/r@7", "s"))
        writer = sqlite3.connect(path, timeout=0.1)
        try:
            writer.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
            assert await asyncio.wait_for(store.take_dirty_cards(), timeout=2.0) == []
        finally:
            writer.rollback()
            writer.close()
        await store.mark_card_dirty("ns/r@7")
        assert await store.take_dirty_cards() == ["ns/r@7"]
    finally:
        await store.close()
