"""Active/standby (bot/leader.py) on SQLite and a real PostgreSQL, two replicas' stores.

Aspects under test:
- one of two contenders leads; the other is a standby, fenced (it runs no loop) but with
  no readiness problem (it serves), and says who leads; before the lifespan asks
  (STARTING) nobody is fenced;
- a graceful release hands over at the standby's next try;
- a leader that is not renewed past its ttl is taken over, and the old leader, on its next
  renewal, finds the lease taken: LOST, fenced, with a readiness problem saying so;
- a leader whose local deadline passes without a renewal (a stalled loop, a database that
  does not answer) is fenced at once, before anyone else can have taken over;
- database errors while waiting are a "not now", never an exception.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime.leader import Leadership, Role
from bot.store import SqlStore

pytestmark = pytest.mark.timeout(60)


async def test_one_leads_the_other_stands_by(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a_store, b_store = two_stores
    a = Leadership(a_store, ttl=3.0, holder="replica-a")
    b = Leadership(b_store, ttl=3.0, holder="replica-b")
    assert not a.fenced and not b.fenced  # STARTING: the lifespan has not asked yet
    won = await asyncio.gather(a.try_acquire(), b.try_acquire())
    assert sorted(won) == [False, True]
    leader, standby = (a, b) if won[0] else (b, a)
    assert leader.role is Role.LEADER and leader.leading and not leader.fenced
    assert standby.role is Role.STANDBY and standby.fenced
    assert await leader.problem() is None
    assert await standby.problem() is None  # a standby serves: Ready
    held = await standby.holder_now()
    assert held is not None and held.startswith(f"{leader.holder} (lease until ")
    assert not await standby.try_acquire()  # still held

    await leader.release()
    assert leader.role is Role.STANDBY and leader.fenced
    assert await standby.try_acquire()
    assert standby.leading


async def test_a_dead_leader_is_taken_over_and_finds_out(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a_store, b_store = two_stores
    a = Leadership(a_store, ttl=0.6, holder="replica-a")
    b = Leadership(b_store, ttl=0.6, holder="replica-b")
    assert await a.try_acquire()
    # a stops renewing (dead, or stalled): b waits every ttl/3 and takes over after the ttl
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(b.wait_until_leader(), timeout=10)
    took = asyncio.get_running_loop().time() - started
    assert b.leading and took >= 0.4  # not before a's lease ran out (with clock slack)
    assert a.fenced  # its own deadline passed: it stopped acting before b took over
    # a comes back to renew: refused, LOST for good
    await asyncio.wait_for(a.keep(), timeout=5)
    assert a.role is Role.LOST and a.fenced
    assert await a.problem() == "lost the leader lease: stopping"
    assert b.leading


async def test_keep_renews_while_the_database_answers(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a_store, b_store = two_stores
    a = Leadership(a_store, ttl=0.6, holder="replica-a")
    b = Leadership(b_store, ttl=0.6, holder="replica-b")
    assert await a.try_acquire()
    keeping = asyncio.create_task(a.keep())
    try:
        for _ in range(6):  # three ttls: renewed all along, never taken
            await asyncio.sleep(0.3)
            assert a.leading
            assert not await b.try_acquire()
    finally:
        keeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await keeping


class _Down:
    """A store whose database does not answer."""

    async def acquire_lease(self, name: str, holder: str, *, ttl: float) -> bool:
        raise ConnectionError("database unreachable")

    async def release_lease(self, name: str, holder: str) -> None:
        raise ConnectionError("database unreachable")

    async def lease_holder(self, name: str) -> None:
        raise ConnectionError("database unreachable")


async def test_database_down_is_not_now_then_fenced_at_the_deadline(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    down = Leadership(_Down(), ttl=0.6, holder="replica-x")
    assert not await down.try_acquire()  # an error is a "not now"
    assert down.role is Role.STANDBY and down.fenced
    assert await down.problem() is None
    assert await down.holder_now() is None  # the database does not say: nobody known

    store, _ = two_stores
    leader = Leadership(store, ttl=0.6, holder="replica-a")
    assert await leader.try_acquire()
    leader.store = _Down()  # the database stops answering the leader
    await asyncio.wait_for(leader.keep(), timeout=5)  # retried until the deadline, then out
    assert leader.role is Role.LOST and leader.fenced
    await leader.release()  # a lost leader does not touch the lease
