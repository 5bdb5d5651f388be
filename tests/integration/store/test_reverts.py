"""Tier 3 reverts run by rollbot in the store (migration 0007), on SQLite and a real
PostgreSQL.

Aspects under test:
- `create_revert` inserts a case once: a second create with the same key (another
  responder, a retried click) gets the first case back, unchanged, and `created` False;
- `advance_revert` moves a case from the state and version it was read at, with its
  changes, and returns it as written; from a stale read (someone moved it since) it
  writes nothing and returns None; two replicas advancing the same read at once: one wins;
- every field round-trips (the files as a tuple, the state as `RevertState`);
- `reverts_in` lists the cases in the given states, oldest change first;
- migration 0007 goes down to 0006 (the table dropped) and up again to a schema equal to
  the models.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from bot.core.gitops import RevertCase, RevertState, gitops_key
from bot.store import SqlStore, open_store
from tests.integration.store.migrations import downgraded, upgraded

pytestmark = pytest.mark.timeout(60)


def case(card: str = "payments/payment-router@8", **changes: object) -> RevertCase:
    base = RevertCase(
        key=gitops_key(card),
        service="payment-router",
        card_key=card,
        revision=8,
        state=RevertState.PREPARED,
        requester="U0ONCALL",
        requested_at="2026-12-06T15:00:00+00:00",
        provider="github",
        project="platform/configs",
        url="https://github.com/platform/configs.git",
        base="main",
        path="services/payment-router",
        branch="rollbot/revert/payment-router-r8-abc",
        release_sha="a" * 40,
        image="registry.example.com/payment-router:1.4.2",
        kind="revert",
        base_sha="b" * 40,
        head_sha="c" * 40,
        diff="--- a/x\n+++ b/x\n",
        files=("services/payment-router/kustomization.yaml",),
    )
    return _replace(base, **changes)


def _replace(c: RevertCase, **changes: Any) -> RevertCase:
    return dataclasses.replace(c, **changes)


async def test_a_case_is_created_once(sql_store: SqlStore) -> None:
    first, created = await sql_store.create_revert(case())
    assert created and first.version == 0 and first.state is RevertState.PREPARED
    again, created = await sql_store.create_revert(case(requester="U0LEAD", diff="other"))
    assert not created
    assert again.requester == "U0ONCALL" and again.diff == first.diff
    assert await sql_store.get_revert(first.key) == first


async def test_a_case_moves_from_what_was_read(sql_store: SqlStore) -> None:
    read, _ = await sql_store.create_revert(case())
    moved = await sql_store.advance_revert(
        read, RevertState.OPENED, change_number=12, change_url="https://h/pr/12"
    )
    assert moved is not None and moved.state is RevertState.OPENED and moved.version == 1
    assert await sql_store.get_revert(read.key) == moved
    # From the stale read: nothing written.
    assert await sql_store.advance_revert(read, RevertState.FAILED, error="late") is None
    stored = await sql_store.get_revert(read.key)
    assert stored is not None and stored.state is RevertState.OPENED and stored.error is None


async def test_two_advances_of_one_read_one_wins(sql_store: SqlStore) -> None:
    read, _ = await sql_store.create_revert(case())
    results = await asyncio.gather(
        sql_store.advance_revert(read, RevertState.CONFIRMED),
        sql_store.advance_revert(read, RevertState.CANCELLED),
    )
    won = [r for r in results if r is not None]
    assert len(won) == 1
    stored = await sql_store.get_revert(read.key)
    assert stored is not None and stored.state is won[0].state


async def test_every_field_round_trips(sql_store: SqlStore) -> None:
    full = case(
        change_number=3,
        change_url="https://h/pr/3",
        merge_sha="d" * 40,
        approver="U0LEAD",
        break_glass=None,
        note="git revert conflicted in x",
        channel="C0PAYMENTS",
        message_ts="1700000000.000100",
        merge_mode="humans",
    )
    stored, _ = await sql_store.create_revert(full)
    assert stored.files == ("services/payment-router/kustomization.yaml",)
    assert _replace(stored, version=0, updated_at="") == _replace(full, updated_at="")


async def test_cases_by_state(sql_store: SqlStore) -> None:
    a, _ = await sql_store.create_revert(case("ns/a@1"))
    b, _ = await sql_store.create_revert(case("ns/b@1"))
    await sql_store.create_revert(case("ns/c@1", state=RevertState.VERIFIED))
    moved = await sql_store.advance_revert(a, RevertState.CONFIRMED)
    assert moved is not None
    live = await sql_store.reverts_in([RevertState.PREPARED, RevertState.CONFIRMED])
    assert [c.key for c in live] == [b.key, a.key]  # a changed last


async def test_migration_0007_goes_down_and_up_again(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.create_revert(case())
    finally:
        await store.close()
    assert "reverts" not in await downgraded(store_url, "0006")
    async with upgraded(store_url) as store:
        assert await store.reverts_in(list(RevertState)) == []
