"""bot.cards.Cards of two replicas over one store: the leader renders the card (its watch,
the alerts), and an action runs on whichever replica the click reached (issue 15).

Aspects:
- an outcome reported by the other replica (a standby that took the Abort) stays on the
  card: the leader, whose memory of the card predates it, renders it with the outcome;
- a later outcome reported by the other replica replaces the leader's own earlier one;
- the leader's own outcome, newer than the record's, is not taken back by an older one.

The Chat port is one in-memory fake both replicas post to (rollbot's own Protocol, not an
SDK); the store is the real SqlStore on a SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cards import Cards
from bot.core.model import Incident, IncidentState, MessageRef, Outcome, RolloutAction
from bot.settings import ServiceSettings
from bot.store import open_store
from tests.states import NOW
from tests.unit.core.test_timeline import ABORTED, PAUSED

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
CATALOG = {
    SERVICE: ServiceSettings(
        namespace="payments", rollout="payment-router", channel="#payments-deploys"
    )
}
ABORT = Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.8)
RETRY = Outcome(RolloutAction.RETRY, "U0LEAD", NOW + timedelta(minutes=2), True, 1.1)
INCIDENT = Incident(
    service=SERVICE,
    namespace="payments",
    rollout="payment-router",
    revision=42,
    state=IncidentState.OPEN,
    opened_at=NOW,
    changed_at=NOW,
    firing=frozenset({"rollout", "f1"}),
    seen=frozenset({"rollout", "f1"}),
    first_breach_at=None,
)


class SharedChat:
    """The channel both replicas post to: posts, and the text of every update (with who
    sent it)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[tuple[str, str]] = []

    def as_replica(self, name: str) -> Any:
        chat = self

        class Replica:
            async def post(
                self,
                channel: str,
                *,
                text: str,
                blocks: list[dict[str, Any]] | None = None,
                thread_ts: str | None = None,
                key: str | None = None,
            ) -> MessageRef:
                chat.posts.append({"text": text, "thread_ts": thread_ts, "key": key})
                return MessageRef("C0PAY", f"1700000000.{len(chat.posts):06d}")

            async def find_post(
                self, channel: str, key: str, *, thread_ts: str | None = None, since: float
            ) -> MessageRef | None:
                for i, post in enumerate(chat.posts, start=1):
                    if post["key"] == key:
                        return MessageRef("C0PAY", f"1700000000.{i:06d}")
                return None

            async def update(
                self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]
            ) -> None:
                chat.updates.append((name, text))

        return Replica()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Cards, Cards, SharedChat]]:
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    chat = SharedChat()
    leader = Cards(
        chat=chat.as_replica("leader"), store=store, catalog=CATALOG, update_interval=0.0
    )
    standby = Cards(
        chat=chat.as_replica("standby"), store=store, catalog=CATALOG, update_interval=0.0
    )
    yield leader, standby, chat
    await leader.close()
    await standby.close()
    await store.close()


def last_render(chat: SharedChat, by: str) -> str:
    return [text for who, text in chat.updates if who == by][-1]


async def test_an_outcome_reported_by_the_standby_stays_on_the_card(
    replicas: tuple[Cards, Cards, SharedChat],
) -> None:
    leader, standby, chat = replicas
    await leader.observe(PAUSED)  # the leader's watch posts the card
    await standby.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")  # the click
    assert "<@U0ONCALL>" in last_render(chat, "standby")

    await leader.incident_changed(SERVICE, ABORTED, INCIDENT)  # an alert, on the leader
    assert chat.updates[-1][0] == "leader"
    assert "<@U0ONCALL>" in last_render(chat, "leader")


async def test_a_later_outcome_from_the_standby_replaces_the_leaders(
    replicas: tuple[Cards, Cards, SharedChat],
) -> None:
    leader, standby, chat = replicas
    await leader.observe(PAUSED)
    await leader.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")
    await standby.report(SERVICE, ABORTED, RETRY, "Retried by <@U0LEAD>")

    await leader.incident_changed(SERVICE, ABORTED, INCIDENT)
    assert chat.updates[-1][0] == "leader"
    assert "<@U0LEAD>" in last_render(chat, "leader")
    assert "<@U0ONCALL>" not in last_render(chat, "leader")


async def test_the_leaders_newer_outcome_is_not_taken_back(
    replicas: tuple[Cards, Cards, SharedChat],
) -> None:
    leader, standby, chat = replicas
    await leader.observe(PAUSED)
    await standby.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")
    await leader.report(SERVICE, ABORTED, RETRY, "Retried by <@U0LEAD>")

    await leader.incident_changed(SERVICE, ABORTED, INCIDENT)
    assert "<@U0LEAD>" in last_render(chat, "leader")
    assert "<@U0ONCALL>" not in last_render(chat, "leader")
