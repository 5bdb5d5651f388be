"""Incidents, and each card's outcome and PagerDuty line, in the store: on SQLite and a real
PostgreSQL 15 (`store_url` is parametrised like tests/integration/store/test_store.py).

- an incident round-trips exactly: frozensets, summaries in order as 2-tuples, aware UTC
  datetimes (given in another zone), no first breach, the alerts firing now; its sets are
  stored as sorted lists;
- saving again replaces the row (alerts too, never merged) and keeps `pages`;
- `load_incidents(since=…)`: every incident not resolved, resolved ones from `since` on
  (inclusive), oldest `opened_at` first;
- `open_incident(service)`: the service's newest incident not resolved (what every
  replica's runbook page shows), None when there is none;
- two replicas saving one incident at once leave one row, one of the versions written;
- 20 concurrent `bump_incident_pages` from two engines count 1…20; no row: RecordNotFound;
- a card's outcome (a Rollout or a flag action) and PagerDuty line round-trip, clear to
  None, survive the card's other updates and are what a losing claim reads; an outcome
  this build cannot read is logged and read as None; no card: RecordNotFound;
- migration 0005 goes down to 0004 (incidents and the cards' columns dropped, cards kept)
  and up again to a schema with no autogenerate diff.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.core.model import FlagAction, Incident, IncidentState, Outcome, RolloutAction
from bot.core.ports import IncidentRecord
from bot.store import RecordNotFound, SqlStore, current_revision, open_store
from bot.store.migrate import downgrade
from bot.store.schema import cards, incidents
from tests.integration.store.migrations import upgraded

T0 = datetime(2026, 12, 8, 13, 51, 7, 250000, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def incident(revision: int = 7, **changes: object) -> Incident:
    base = Incident(
        service="payment-router",
        namespace="payments",
        rollout="payment-router",
        revision=revision,
        state=IncidentState.OPEN,
        opened_at=T0,
        changed_at=T0 + timedelta(seconds=5),
        firing=frozenset({"rollout", "fp-b", "fp-a"}),
        seen=frozenset({"rollout", "fp-b", "fp-a", "fp-old"}),
        first_breach_at=T0 - timedelta(minutes=2),
        summaries=(("rollout", "Analysis failed"), ("fp-b", "error rate 4%"), ("fp-a", "p99")),
        alert_starts=(("fp-a", T0 - timedelta(minutes=2)), ("fp-b", T0)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


ALERTS = {"fp-a": "p99 latency 2.1 s", "fp-b": "error rate 4% > 1%"}


async def incident_rows(store: SqlStore) -> list[sa.Row[object]]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(sa.select(incidents))).all())


# ── incidents ──────────────────────────────────────────────────────────────────────────


async def test_an_incident_round_trips_exactly(sql_store: SqlStore) -> None:
    given = incident(
        opened_at=T0.astimezone(CET),
        changed_at=(T0 + timedelta(seconds=5)).astimezone(CET),
        first_breach_at=(T0 - timedelta(minutes=2)).astimezone(CET),
    )
    await sql_store.save_incident(given, ALERTS)

    record = await sql_store.get_incident("payments/payment-router@7")
    assert record == IncidentRecord(incident=incident(), alerts=ALERTS, pages=0)
    assert record is not None
    got = record.incident
    assert got == given
    assert isinstance(got.firing, frozenset) and isinstance(got.seen, frozenset)
    assert got.summaries == given.summaries and isinstance(got.summaries, tuple)
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in got.summaries)
    assert got.state is IncidentState.OPEN
    for at in (got.opened_at, got.changed_at, got.first_breach_at):
        assert at is not None and at.tzinfo == UTC
    with pytest.raises(TypeError):
        record.alerts["fp-c"] = "new"  # type: ignore[index]

    (row,) = await incident_rows(sql_store)
    assert row.firing == ["fp-a", "fp-b", "rollout"]
    assert row.seen == ["fp-a", "fp-b", "fp-old", "rollout"]
    assert row.summaries == [
        ["rollout", "Analysis failed"],
        ["fp-b", "error rate 4%"],
        ["fp-a", "p99"],
    ]
    assert row.state == "open" and row.card_key == "payments/payment-router@7"

    assert await sql_store.get_incident("payments/payment-router@8") is None


async def test_an_incident_with_nothing_firing_and_no_breach(sql_store: SqlStore) -> None:
    quiet = incident(
        state=IncidentState.RECOVERING,
        firing=frozenset(),
        seen=frozenset(),
        first_breach_at=None,
        summaries=(),
    )
    await sql_store.save_incident(quiet, {})
    assert await sql_store.get_incident(quiet.card_key) == IncidentRecord(quiet, {}, 0)


async def test_saving_again_replaces_the_row_and_keeps_pages(sql_store: SqlStore) -> None:
    first = incident()
    await sql_store.save_incident(first, ALERTS)
    assert await sql_store.bump_incident_pages(first.card_key) == 1
    assert await sql_store.bump_incident_pages(first.card_key) == 2

    later = replace(
        first,
        state=IncidentState.RECOVERING,
        changed_at=T0 + timedelta(minutes=3),
        firing=frozenset(),
        summaries=(),
    )
    await sql_store.save_incident(later, {"fp-c": "only this one"})

    assert await sql_store.get_incident(first.card_key) == IncidentRecord(
        incident=later, alerts={"fp-c": "only this one"}, pages=2
    )
    assert len(await incident_rows(sql_store)) == 1


async def test_load_incidents_keeps_the_live_and_the_recently_resolved(
    sql_store: SqlStore,
) -> None:
    since = T0 + timedelta(hours=1)
    kept = [
        incident(1, opened_at=T0 + timedelta(minutes=1)),  # open, changed long before since
        incident(2, state=IncidentState.RESOLVED, changed_at=since),  # resolved at since
        incident(3, state=IncidentState.RECOVERING, opened_at=T0 - timedelta(minutes=1)),
        incident(
            4,
            state=IncidentState.RESOLVED,
            opened_at=T0 + timedelta(minutes=2),
            changed_at=since + timedelta(seconds=1),
        ),
    ]
    dropped = incident(
        5,
        state=IncidentState.RESOLVED,
        opened_at=T0 - timedelta(minutes=5),
        changed_at=since - timedelta(microseconds=1),
    )
    for i, given in enumerate([*kept, dropped]):
        await sql_store.save_incident(given, {f"fp-{i}": f"alert {i}"})
    await sql_store.bump_incident_pages(kept[0].card_key)

    loaded = await sql_store.load_incidents(since=since)

    # oldest opened_at first: 3 (T0-1m), 2 (T0), 1 (T0+1m), 4 (T0+2m)
    assert [r.incident.revision for r in loaded] == [3, 2, 1, 4]
    assert {r.incident.revision: r.pages for r in loaded} == {3: 0, 2: 0, 1: 1, 4: 0}
    assert loaded[2] == IncidentRecord(kept[0], {"fp-0": "alert 0"}, 1)
    assert await sql_store.load_incidents(since=since + timedelta(days=1)) == [
        loaded[0],
        loaded[2],
    ]


async def test_open_incident_is_the_service_s_newest_not_resolved(sql_store: SqlStore) -> None:
    assert await sql_store.open_incident("payment-router") is None
    older = incident(1, opened_at=T0)
    newer = incident(2, opened_at=T0 + timedelta(minutes=1), state=IncidentState.RECOVERING)
    resolved = incident(3, opened_at=T0 + timedelta(minutes=2), state=IncidentState.RESOLVED)
    other = incident(9, service="checkout", opened_at=T0 + timedelta(minutes=3))
    for given in (older, newer, resolved, other):
        await sql_store.save_incident(given, {})
    assert await sql_store.open_incident("payment-router") == newer
    assert await sql_store.open_incident("checkout") == other
    assert await sql_store.open_incident("unknown") is None


async def test_two_replicas_saving_one_incident_leave_one_row(
    two_stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = two_stores
    versions = [
        incident(changed_at=T0 + timedelta(seconds=n), firing=frozenset({f"fp-{n}"}))
        for n in range(10)
    ]
    await asyncio.gather(
        *(
            store.save_incident(version, {f"fp-{n}": f"alert {n}"})
            for n, version in enumerate(versions)
            for store in (a, b)
        )
    )
    rows = await incident_rows(a)
    assert len(rows) == 1
    record = await b.get_incident(versions[0].card_key)
    assert record is not None
    n = versions.index(record.incident)  # one version, written whole
    assert record.alerts == {f"fp-{n}": f"alert {n}"} and record.pages == 0


async def test_page_bumps_are_atomic(two_stores: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_stores
    key = incident().card_key
    await a.save_incident(incident(), ALERTS)
    counts = await asyncio.gather(
        *(store.bump_incident_pages(key) for _ in range(10) for store in (a, b))
    )
    assert sorted(counts) == list(range(1, 21))
    record = await b.get_incident(key)
    assert record is not None and record.pages == 20
    with pytest.raises(RecordNotFound):
        await a.bump_incident_pages("payments/payment-router@99")


# ── a card's outcome and PagerDuty line ────────────────────────────────────────────────


async def test_a_cards_outcome_and_pager_line_round_trip(sql_store: SqlStore) -> None:
    key = "payments/payment-router@7"
    _, fresh = await sql_store.claim_card(key, service="payment-router", channel="#deploys")
    assert fresh.outcome is None and fresh.pager is None
    aborted = Outcome(
        action=RolloutAction.ABORT,
        actor_id="U-alice",
        at=T0.astimezone(CET),
        verified=True,
        seconds=0.1,
        detail="all traffic back on stable revision 41",
    )
    await sql_store.set_card_outcome(key, aborted)
    await sql_store.set_card_pager(key, "PagerDuty: Q1ABC (acknowledged) · <https://pd/x|open>")

    card = await sql_store.get_card(key)
    assert card is not None
    assert card.outcome == aborted and card.outcome.at.tzinfo == UTC
    assert card.outcome.action is RolloutAction.ABORT
    assert card.pager == "PagerDuty: Q1ABC (acknowledged) · <https://pd/x|open>"

    # the card's other updates keep them; a losing claim reads them
    posted = await sql_store.set_card_message(key, ts="1700000000.000100", digest="d1")
    assert posted.outcome == aborted and posted.pager == card.pager
    await sql_store.bump_card_epoch(key)
    won, again = await sql_store.claim_card(key, service="payment-router", channel="#deploys")
    assert not won and again.outcome == aborted and again.pager == card.pager

    flipped = Outcome(FlagAction.CIRCUIT_OPEN, "U-bob", T0, verified=False, seconds=12.5)
    await sql_store.set_card_outcome(key, flipped)
    card = await sql_store.get_card(key)
    assert card is not None and card.outcome == flipped
    assert card.outcome.action is FlagAction.CIRCUIT_OPEN

    await sql_store.set_card_outcome(key, None)
    await sql_store.set_card_pager(key, None)
    card = await sql_store.get_card(key)
    assert card is not None and card.outcome is None and card.pager is None
    async with sql_store.engine.connect() as conn:
        raw = (await conn.execute(sa.select(cards.c.outcome.is_(None)))).scalar_one()
    assert raw  # SQL NULL, not the JSON text 'null'

    with pytest.raises(RecordNotFound):
        await sql_store.set_card_outcome("payments/other@1", aborted)
    with pytest.raises(RecordNotFound):
        await sql_store.set_card_pager("payments/other@1", "x")


async def test_an_outcome_this_build_cannot_read_is_none(
    sql_store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    key = "payments/payment-router@7"
    await sql_store.claim_card(key, service="payment-router", channel="#deploys")
    async with sql_store.engine.begin() as conn:
        await conn.execute(
            cards.update()
            .where(cards.c.card_key == key)
            .values(outcome={"action": "teleport", "actor_id": "U1", "at": T0.isoformat()})
        )
    caplog.set_level(logging.WARNING, logger="bot.store.cards")
    card = await sql_store.get_card(key)
    assert card is not None and card.outcome is None
    assert any(key in r.getMessage() and "teleport" in r.getMessage() for r in caplog.records)


# ── migration 0005 ─────────────────────────────────────────────────────────────────────


async def test_migration_0005_goes_down_and_up_again(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        await store.claim_card("ns/r@1", service="s", channel="#c")
        await store.set_card_pager("ns/r@1", "PagerDuty line")
        await store.save_incident(incident(), ALERTS)
    finally:
        await store.close()

    await downgrade(store_url, "0004")
    assert await asyncio.to_thread(current_revision, store_url) == "0004"
    store = await open_store(store_url, migrate=False)
    try:

        def shape(conn: sa.Connection) -> tuple[list[str], list[str]]:
            inspector = sa.inspect(conn)
            return inspector.get_table_names(), [c["name"] for c in inspector.get_columns("cards")]

        async with store.engine.connect() as conn:
            tables, card_columns = await conn.run_sync(shape)
            card_keys = (await conn.execute(sa.text("SELECT card_key FROM cards"))).scalars().all()
        assert "incidents" not in tables
        assert "outcome" not in card_columns and "pager" not in card_columns
        assert card_keys == ["ns/r@1"]
    finally:
        await store.close()

    async with upgraded(store_url) as store:
        card = await store.get_card("ns/r@1")
        assert card is not None and card.outcome is None and card.pager is None
        assert await store.load_incidents(since=T0) == []
