"""A store call whose caller is cancelled runs to the end of its transaction.

A shutdown cancels rollbot's loops wherever they are. Cancelled mid-statement, SQLAlchemy
invalidates the connection without ending its transaction, and with SQLite the abandoned
connection keeps the database's write lock: the next write (the leader lease's release at
shutdown) waited out the busy timeout, and uvicorn gave up on the shutdown (a flaky
teardown error in test_workbench_checkout, 1 run in ~40).

Aspects under test, on SQLite and a real PostgreSQL:
- callers cancelled at every point of a write (after each of the event loop's turns
  while it runs) get CancelledError, and the write is done; cancelled before it began, it
  is not done;
- right after, another writer (another engine, a 0.5 s busy timeout) writes at once: no
  lock was left behind;
- `close` waits for a call still finishing for a cancelled caller.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.core.gitops import RevertCase, RevertState, gitops_key
from bot.store import SqlStore, open_store

pytestmark = pytest.mark.timeout(60)


def case(card: str) -> RevertCase:
    return RevertCase(
        key=gitops_key(card),
        service="s",
        card_key=card,
        revision=1,
        state=RevertState.PREPARED,
        requester="U1",
        requested_at="2026-12-06T00:00:00+00:00",
        provider="github",
        project="p/c",
        url="https://example.com/p/c.git",
        base="main",
        path="x",
        branch="b",
        release_sha="a" * 40,
    )


@pytest.mark.parametrize("turns", [0, 1, 2, 3, 5, 8])
async def test_a_cancelled_write_finishes_and_leaves_no_lock(store_url: str, turns: int) -> None:
    store = await open_store(store_url)
    other = await open_store(store_url, migrate=False, busy_timeout=0.5)
    try:
        card = f"ns/r@{turns}"
        writing = asyncio.ensure_future(store.create_revert(case(card)))
        for _ in range(turns):
            await asyncio.sleep(0)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        # Another writer is not kept waiting by a lock the cancelled call left behind.
        async with asyncio.timeout(5):
            await other.acquire_lease("leader", "other", ttl=10)
            await other.release_lease("leader", "other")
        # The cancelled call's write was done all the same (or is finishing: close waits);
        # cancelled before it started (no turn of the loop), it was never begun.
        await store.close()
        written = await other.get_revert(gitops_key(card))
        if turns == 0:
            assert written is None
        else:
            assert written is not None and written.requester == "U1"
    finally:
        await store.close()
        await other.close()


async def test_close_waits_for_a_call_finishing_for_a_cancelled_caller(
    sql_store: SqlStore,
) -> None:
    writing = asyncio.ensure_future(sql_store.create_revert(case("ns/r@9")))
    await asyncio.sleep(0)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await sql_store.close()
    assert not sql_store._in_flight  # what close waited for
