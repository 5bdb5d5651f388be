"""A card's thread lines waiting for Slack, in the store (migration 0008), on SQLite and a
real PostgreSQL.

Aspects under test:
- a line added is its owner's for its lease: nobody takes it while the lease runs, and the
  owner renews it; another process's renewal is refused;
- once the lease has run out (the owner died), `take_card_lines` hands the lines over to
  the taker, oldest first, for a lease of its own: the old owner can no longer renew them,
  and a second taker finds nothing;
- two takers at once (two replicas that both think they lead) never both get a line;
- `release_card_lines` ends the owner's leases at once (a graceful stop); `drop_card_line`
  forgets a posted line;
- migration 0008 goes down to 0007 (the table dropped) and up again to the schema.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.store import open_store
from tests.integration.store.migrations import downgraded, upgraded

CARD = "payments/payment-router@42"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def stores(store_url: str):
    """Two processes' stores on one database, on one clock."""
    clock = Clock()
    a = await open_store(store_url, clock=clock)
    b = await open_store(store_url, clock=clock)
    try:
        yield a, b, clock
    finally:
        await a.close()
        await b.close()


async def test_a_line_is_its_owners_until_its_lease_runs_out(stores) -> None:
    a, b, clock = stores
    await a.add_card_line("k1", card_key=CARD, text="first", owner="a", lease=60)
    clock.advance(1)
    await a.add_card_line("k2", card_key=CARD, text="second", owner="a", lease=60)
    assert await b.take_card_lines(owner="b", lease=60) == []
    clock.advance(59.5)
    assert await a.renew_card_line("k1", owner="a", lease=60)  # k1 lives on, k2 runs out
    assert not await b.renew_card_line("k1", owner="b", lease=60)
    clock.advance(1)
    taken = await b.take_card_lines(owner="b", lease=60)
    assert [(t.key, t.card_key, t.text) for t in taken] == [("k2", CARD, "second")]
    assert not await a.renew_card_line("k2", owner="a", lease=60)  # b's now
    assert await b.take_card_lines(owner="c", lease=60) == []
    clock.advance(61)
    taken = await b.take_card_lines(owner="b", lease=60)
    assert [t.key for t in taken] == ["k1", "k2"]  # oldest first
    assert taken[0].created_at == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


async def test_two_takers_at_once_never_share_a_line(stores) -> None:
    a, b, clock = stores
    for i in range(20):
        await a.add_card_line(f"k{i:02d}", card_key=CARD, text=str(i), owner="dead", lease=1)
    clock.advance(2)
    one, two = await asyncio.gather(
        a.take_card_lines(owner="a", lease=60), b.take_card_lines(owner="b", lease=60)
    )
    keys = [t.key for t in one] + [t.key for t in two]
    assert sorted(keys) == [f"k{i:02d}" for i in range(20)]
    assert len(set(keys)) == 20


async def test_release_hands_over_at_once_and_drop_forgets(stores) -> None:
    a, b, _ = stores
    await a.add_card_line("k1", card_key=CARD, text="first", owner="a", lease=600)
    await a.add_card_line("k2", card_key=CARD, text="second", owner="a", lease=600)
    await b.add_card_line("k3", card_key=CARD, text="third", owner="b", lease=600)
    await a.drop_card_line("k1")
    await a.release_card_lines("a")
    taken = await b.take_card_lines(owner="b", lease=600)
    assert [t.key for t in taken] == ["k2"]  # k1 forgotten, k3 still b's own lease


async def test_migration_0008_goes_down_and_up_again(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.add_card_line("k1", card_key=CARD, text="line", owner="a", lease=60)
    finally:
        await store.close()
    assert "card_lines" not in await downgraded(store_url, "0007")
    async with upgraded(store_url) as store:
        assert await store.take_card_lines(owner="a", lease=60) == []
