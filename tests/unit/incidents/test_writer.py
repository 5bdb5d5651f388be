"""The incidents' group commit (bot.incidents.writer) and the inbox's (bot.runtime.batch).

Aspects:
- a lone save is written at once, in its own round;
- saves made while a round is being written go together in the next one: many changes to
  many incidents are two rounds, each caller returning once its change is in the database
  (read back from the real store), the latest state of each incident written;
- a failed round raises to each of its callers, leaves its keys unsaved, and the next round
  writes them too: nothing changed in memory is lost for the database;
- `Batched`: concurrent adds get their own results in order, in fewer writes than adds; a
  failed write raises to each caller of that batch only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest

from bot.core.model import Incident, IncidentState
from bot.incidents.writer import IncidentWriter
from bot.runtime.batch import Batched
from bot.store import SqlStore, open_store
from tests.states import NOW

pytestmark = pytest.mark.timeout(30)


def incident(n: int, firing: int = 1) -> Incident:
    fps = frozenset(f"fp-{i}" for i in range(firing))
    return Incident(
        service=f"svc-{n}",
        namespace="ns",
        rollout=f"svc-{n}",
        revision=7,
        state=IncidentState.OPEN,
        opened_at=NOW,
        changed_at=NOW + timedelta(seconds=firing),
        firing=fps,
        seen=fps,
        first_breach_at=None,
    )


class SlowStore:
    """The real store, each round held until `release` (so saves pile up behind it), and
    failing the rounds queued in `fail`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.rounds: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: list[Exception] = []

    async def save_incidents(self, rows: Sequence[tuple[Incident, Mapping[str, str]]]) -> None:
        self.rounds.append([i.card_key for i, _ in rows])
        await self.gate.wait()
        if self.fail:
            raise self.fail.pop(0)
        await self.store.save_incidents(rows)


@pytest.fixture
async def store(tmp_path: Any) -> Any:
    s = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield s
    await s.close()


async def saved(store: SqlStore) -> dict[str, int]:
    return {
        r.incident.card_key: len(r.incident.firing)
        for r in await store.load_incidents(since=NOW - timedelta(days=1))
    }


async def test_a_lone_save_is_written_at_once(store: SqlStore) -> None:
    memory = {incident(1).card_key: incident(1)}
    slow = SlowStore(store)
    writer = IncidentWriter(store=slow, snapshot=lambda k: (memory[k], {"fp-0": "a"}))
    await writer.save(incident(1).card_key)
    assert slow.rounds == [[incident(1).card_key]]
    assert await saved(store) == {incident(1).card_key: 1}


async def test_saves_during_a_round_are_one_round_with_the_latest_state(store: SqlStore) -> None:
    memory: dict[str, Incident] = {}
    slow = SlowStore(store)
    writer = IncidentWriter(store=slow, snapshot=lambda k: (memory[k], {}))
    first = incident(0)
    memory[first.card_key] = first
    slow.gate.clear()
    holding = asyncio.create_task(writer.save(first.card_key))
    await asyncio.sleep(0)  # the first round is being written
    callers = []
    for step in range(1, 6):  # five changes to each of ten incidents, meanwhile
        for n in range(10):
            memory[incident(n).card_key] = incident(n, firing=step)
            callers.append(asyncio.create_task(writer.save(incident(n).card_key)))
    await asyncio.sleep(0)
    assert not any(c.done() for c in callers)  # not written yet: nobody returned
    slow.gate.set()
    await asyncio.gather(holding, *callers)
    assert len(slow.rounds) == 2 and len(slow.rounds[1]) == 10
    assert await saved(store) == {incident(n).card_key: 5 for n in range(10)}


async def test_a_failed_round_raises_and_its_keys_go_with_the_next(store: SqlStore) -> None:
    memory = {incident(n).card_key: incident(n) for n in range(2)}
    slow = SlowStore(store)
    writer = IncidentWriter(store=slow, snapshot=lambda k: (memory[k], {}))
    slow.fail = [OSError("disk full")]
    with pytest.raises(OSError):
        await writer.save(incident(0).card_key)
    assert writer.pending(incident(0).card_key)
    await writer.save(incident(1).card_key)
    assert sorted(slow.rounds[-1]) == sorted(k for k in memory)
    assert not writer.pending(incident(0).card_key)
    assert set(await saved(store)) == set(memory)


async def test_batched_gives_each_its_result_in_fewer_writes() -> None:
    writes: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        writes.append(items)
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    batched: Batched[int, int] = Batched(write)
    results = await asyncio.gather(*(batched.add(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert writes == [list(range(50))] and batched.batches == 1  # one write for the burst


async def test_batched_raises_a_failed_write_to_its_callers_only() -> None:
    calls = 0

    async def write(items: list[str]) -> list[None]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise OSError("database is locked")
        return [None] * len(items)

    batched: Batched[str, None] = Batched(write)
    first = asyncio.create_task(batched.add("a"))
    await asyncio.sleep(0)
    later = [asyncio.create_task(batched.add(x)) for x in "bcd"]
    with pytest.raises(OSError):
        await first
    assert await asyncio.gather(*later) == [None, None, None]
