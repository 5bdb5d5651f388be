"""bot.incidents.IncidentEngine: a delivery replayed after its incident change was saved
still gets what the change owed (issue 15: nothing is lost).

The process can die, or PagerDuty's queue be out of reach, after the incident's change is
saved and before the page is queued. The webhook stays pending and is replayed; the replay
finds nothing new in the incident. Aspects:
- a listener that failed for a temporary reason leaves the delivery failing (so the inbox
  keeps it pending), and the replay tells the listeners again: the page is queued then;
- a replay after a delivery that went through tells the listeners again too, which is
  harmless: PagerDuty's queue takes each page once (`PagingEngine.enqueue_event`);
- a change whose write failed (the incidents are written by group commit, after memory
  changed) is taken back from memory: the replay finds it again, writes it and shows it.

The engine is the real one on a real SQLite store; the Rollout and the chat are rollbot's
own ports, in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.cards import Cards
from bot.core.errors import Unreachable
from bot.core.model import Alert, Incident, IncidentState, MessageRef, RolloutState
from bot.incidents import IncidentEngine
from bot.settings import ServiceSettings, Settings
from bot.store import SqlStore, open_store
from tests.states import NOW
from tests.unit.core.test_timeline import PAUSED

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
SETTINGS = Settings(
    services={
        SERVICE: ServiceSettings(
            namespace="payments", rollout="payment-router", channel="#payments-deploys"
        )
    }
)
FIRING = Alert(
    "fp-1",
    "RollbotErrorRateHigh",
    "firing",
    {"alertname": "RollbotErrorRateHigh", "service": SERVICE},
    {"summary": "canary 5xx 31 %"},
    NOW,
    None,
)


class Chat:
    def __init__(self) -> None:
        self.posts: list[str] = []

    async def post(self, channel: str, *, text: str, **_: Any) -> MessageRef:
        self.posts.append(text)
        return MessageRef("C0PAY", "1700000000.000001")

    async def find_post(self, *_: Any, **__: Any) -> MessageRef | None:
        return None

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        return None


class Rollouts:
    async def get_state(self, namespace: str, name: str) -> RolloutState:
        return PAUSED

    async def cached_state(self, namespace: str, name: str) -> RolloutState:
        return PAUSED


class Pager:
    """A listener that is out of reach the first `down` times it is told."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.told: list[IncidentState] = []

    async def __call__(self, service: str, state: RolloutState, incident: Incident) -> None:
        if self.down:
            self.down -= 1
            raise Unreachable("PagerDuty", "its queue is out of reach")
        self.told.append(incident.state)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield store
    await store.close()


class FailingWrites:
    """The store, its incident writes failing the first `fail` times."""

    def __init__(self, store: SqlStore, fail: int) -> None:
        self.store, self.fail = store, fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def save_incidents(self, rows: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk I/O error")
        await self.store.save_incidents(rows)


def engine(
    store: SqlStore, pager: Pager, incident_store: Any = None, chat: Chat | None = None
) -> IncidentEngine:
    chat = chat or Chat()
    cards = Cards(chat=chat, store=store, catalog=SETTINGS.services, update_interval=0.0)
    return IncidentEngine(
        settings=SETTINGS,
        rollouts=Rollouts(),
        cards=cards,
        chat=chat,
        store=incident_store or store,
        listeners=[pager],
        now=lambda: NOW,
    )


async def test_a_page_that_could_not_be_queued_is_queued_by_the_replay(store: SqlStore) -> None:
    pager = Pager(down=1)
    incidents = engine(store, pager)
    with pytest.raises(Unreachable):
        await incidents.on_alerts([FIRING], {})  # the inbox keeps the delivery pending
    saved = await store.get_incident(PAUSED_KEY)
    assert saved is not None and saved.incident.state is IncidentState.OPEN
    assert pager.told == []

    await incidents.on_alerts([FIRING], {})  # the replay: nothing new in the incident
    assert pager.told == [IncidentState.OPEN]


async def test_a_replay_after_a_restart_tells_the_listeners_again(store: SqlStore) -> None:
    await engine(store, Pager()).on_alerts([FIRING], {})  # saved; then the process died
    pager = Pager()
    restarted = engine(store, pager)
    assert await restarted.restore() == 1
    await restarted.on_alerts([FIRING], {})
    assert pager.told == [IncidentState.OPEN]


async def test_a_change_whose_write_failed_is_found_again_by_the_replay(
    store: SqlStore,
) -> None:
    pager, chat = Pager(), Chat()
    incidents = engine(store, pager, FailingWrites(store, fail=1), chat)
    with pytest.raises(OSError):
        await incidents.on_alerts([FIRING], {})  # the inbox keeps the delivery pending
    assert await store.get_incident(PAUSED_KEY) is None
    assert pager.told == [] and PAUSED_KEY not in incidents.incidents

    await incidents.on_alerts([FIRING], {})  # the replay: the change, again
    saved = await store.get_incident(PAUSED_KEY)
    assert saved is not None and saved.incident.state is IncidentState.OPEN
    assert pager.told == [IncidentState.OPEN]
    assert any("Incident opened" in text for text in chat.posts)  # its line, not lost


PAUSED_KEY = f"{PAUSED.namespace}/{PAUSED.name}@{PAUSED.revision}"
