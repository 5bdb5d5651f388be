"""bot.cards.Cards in a process that takes over cards another one showed (a restart, a
failover): two `Cards` on one database, the first gone before the second renders.

Aspects:
- the evidence refreshed for a card this process has never shown updates the same message,
  with the incident the last leader left (`restored`) and its alert lines: the watch does
  not read an unchanged Rollout again, so no other render comes first;
- the watch's first read of the Rollout after the takeover keeps the restored incident on
  the card (its memory starts from it);
- evidence for a card without a message posts nothing;
- an action a standby reported on a card this leader never showed (it took over): the
  leader's `render_marked` takes the card over, reading the Rollout now, and renders the
  outcome with the restored incident; PagerDuty's next line shows at once; a mark on a
  card whose Rollout has moved on to a newer revision is left alone.

The end-to-end proof, with a real `rollbot serve` killed and a real Prometheus, is
tests/e2e/test_incident_restart.py::test_the_evidence_keeps_refreshing_after_kill_9.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cards import Cards, card_key
from bot.core.model import (
    Evidence,
    MessageRef,
    MetricPair,
    Outcome,
    RolloutAction,
    RolloutState,
)
from bot.settings import ServiceSettings
from bot.store import SqlStore, open_store
from tests.states import NOW
from tests.unit.cards.test_slow_slack import INCIDENT
from tests.unit.core.test_timeline import PAUSED

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
CATALOG = {
    SERVICE: ServiceSettings(
        namespace="payments", rollout="payment-router", channel="#payments-deploys"
    )
}
ALERT = "RollbotErrorRateHigh: canary 5xx ratio 30 %"


def evidence(canary_error_rate: float) -> Evidence:
    return Evidence(
        available=True,
        detail="",
        error_rate=MetricPair(canary_error_rate, 0.0),
        slo_error_rate=0.02,
        queried_at=NOW,
    )


class Chat:
    """Records the card's posts and every update's blocks (the Chat port, in memory)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[list[dict[str, Any]]] = []

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        self.posts.append({"text": text, "blocks": blocks, "thread_ts": thread_ts})
        return MessageRef("C0PAY", f"1700000000.{len(self.posts):06d}")

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        return None

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        self.updates.append(blocks)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield store
    await store.close()


async def shown_by_the_last_leader(store: SqlStore) -> None:
    """The card posted and rendered with the incident and its evidence, by a process that
    is gone now (nothing of its memory is left)."""
    cards = Cards(chat=Chat(), store=store, catalog=CATALOG, update_interval=0.0)
    await cards.incident_changed(SERVICE, PAUSED, INCIDENT, alerts=[ALERT])
    await cards.set_evidence(SERVICE, PAUSED, evidence(0.30))


def header(blocks: list[dict[str, Any]]) -> str:
    return next(b["text"]["text"] for b in blocks if b["type"] == "header")


async def test_evidence_updates_a_card_this_process_never_showed(store: SqlStore) -> None:
    await shown_by_the_last_leader(store)
    chat = Chat()
    cards = Cards(chat=chat, store=store, catalog=CATALOG, update_interval=0.0)
    cards.restored(INCIDENT, alerts=[ALERT])

    await cards.set_evidence(SERVICE, PAUSED, evidence(0.0))

    assert chat.posts == []  # the same message, updated in place
    [blocks] = chat.updates
    assert "Incident open" in header(blocks)
    text = json.dumps(blocks)
    assert "canary 0.00 %" in text and ALERT in text


async def test_the_watch_s_first_read_keeps_the_restored_incident(store: SqlStore) -> None:
    await shown_by_the_last_leader(store)
    chat = Chat()
    cards = Cards(chat=chat, store=store, catalog=CATALOG, update_interval=0.0)
    cards.restored(INCIDENT, alerts=[ALERT])

    await cards.observe(PAUSED)
    await cards.set_evidence(SERVICE, PAUSED, evidence(0.0))

    assert [p for p in chat.posts if p["thread_ts"] is None] == []
    assert chat.updates, "the evidence changed: the card is rendered again"
    for blocks in chat.updates:
        assert "Incident open" in header(blocks)
        assert ALERT in json.dumps(blocks)


async def test_evidence_for_a_card_without_a_message_posts_nothing(store: SqlStore) -> None:
    chat = Chat()
    cards = Cards(chat=chat, store=store, catalog=CATALOG, update_interval=0.0)
    cards.restored(INCIDENT, alerts=[ALERT])

    await cards.set_evidence(SERVICE, PAUSED, evidence(0.30))

    assert chat.posts == [] and chat.updates == []


def reading(state: RolloutState) -> Callable[[str], Awaitable[RolloutState]]:
    """The Rollout as the API server has it now (`Cards(read_state=…)`)."""

    async def read(service: str) -> RolloutState:
        assert service == SERVICE
        return state

    return read


async def test_a_standby_s_action_on_a_card_the_leader_never_showed(store: SqlStore) -> None:
    await shown_by_the_last_leader(store)
    chat = Chat()
    leader = Cards(
        chat=chat, store=store, catalog=CATALOG, update_interval=0.0, read_state=reading(PAUSED)
    )
    leader.restored(INCIDENT, alerts=[ALERT])
    standby = Cards(chat=chat, store=store, catalog=CATALOG, leads=lambda: False)
    aborted = Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.4)
    await standby.report(SERVICE, PAUSED, aborted, "Aborted by <@U0ONCALL>")
    assert chat.updates == []  # the standby never edits the message

    assert await leader.render_marked() == 1  # taken over: the Rollout is at its revision
    [blocks] = chat.updates
    assert "Aborted by <@U0ONCALL>" in json.dumps(blocks) and ALERT in json.dumps(blocks)

    # PagerDuty's line for a card the leader shows now: on the card at once.
    assert await leader.pager_changed(card_key(PAUSED), "PagerDuty: acknowledged", line=None)
    assert "PagerDuty: acknowledged" in json.dumps(chat.updates[-1])


async def test_a_mark_on_an_older_revision_s_card_is_left_alone(store: SqlStore) -> None:
    await shown_by_the_last_leader(store)
    chat = Chat()
    moved_on = dataclasses.replace(PAUSED, revision=PAUSED.revision + 1)
    leader = Cards(chat=chat, store=store, catalog=CATALOG, read_state=reading(moved_on))
    await store.mark_card_dirty(card_key(PAUSED))
    assert await leader.render_marked() == 0
    assert chat.updates == [] and chat.posts == []
