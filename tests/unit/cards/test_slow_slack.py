"""bot.cards.Cards under a slow or failing Slack: the card still ends in its last state.

Aspects:
- an action's report whose card update fails for a while (a TemporaryError with Slack's
  Retry-After) still writes its thread line at once, and the card's flush sends the latest
  state after the delay: the card ends in its final state, with one update that went;
- the retry is the coalesced flush: `settled()` is False while it waits, True once done;
- a second failure is waited out again (the flush reschedules itself);
- shutdown (`close`) sends the pending update once and schedules no retry;
- the card's post failing past `SLACK_PATIENCE` is raised to the caller (who pages
  meanwhile), and the flush posts it later, looking first, then its line: one card;
- a thread line failing waits, with the lines after it, for the flush: posted in order;
- an incident change that waited for the card's lock while a newer one went first (its
  state changed earlier: a recovering incident after the resolved one) does not take the
  card back: the card says resolved.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from bot.cards import Cards, engine, summary_line
from bot.core.errors import TemporaryError
from bot.core.model import Incident, IncidentState, MessageRef, Outcome, RolloutAction
from bot.settings import ServiceSettings
from bot.store import open_store
from tests.states import NOW
from tests.unit.core.test_timeline import ABORTED, PAUSED

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"


class FlakyChat:
    """Posts and updates fail with the errors queued in `post_errors` and `update_errors`
    first (a failed post is not delivered); `find_post` finds what was."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[str] = []  # the text of each update that went through
        self.post_errors: list[Exception] = []
        self.update_errors: list[Exception] = []
        self.update_attempts = 0
        self.looks = 0

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        if self.post_errors:
            raise self.post_errors.pop(0)
        self.posts.append({"text": text, "thread_ts": thread_ts, "key": key})
        return MessageRef("C0PAY", f"1700000000.{len(self.posts):06d}")

    async def find_post(
        self, channel: str, key: str, *, thread_ts: str | None = None, since: float
    ) -> MessageRef | None:
        self.looks += 1
        for i, post in enumerate(self.posts, start=1):
            if post["key"] == key:
                return MessageRef("C0PAY", f"1700000000.{i:06d}")
        return None

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        self.update_attempts += 1
        if self.update_errors:
            raise self.update_errors.pop(0)
        self.updates.append(text)


@pytest.fixture(autouse=True)
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's failures are left to the flush after a fraction of a second."""
    monkeypatch.setattr(engine, "SLACK_PATIENCE", 0.05)


@pytest.fixture
async def made(tmp_path: Any) -> Any:
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments", rollout="payment-router", channel="#payments-deploys"
        )
    }
    chat = FlakyChat()
    cards = Cards(chat=chat, store=store, catalog=catalog, update_interval=0.0)
    yield cards, chat
    await cards.close()
    await store.close()


async def settle(cards: Cards) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not cards.settled():
        assert asyncio.get_running_loop().time() < deadline, "the card never settled"
        await asyncio.sleep(0.01)


ABORT = Outcome(RolloutAction.ABORT, "U0ONCALL", NOW, True, 0.8)


async def test_a_failed_update_is_sent_again_after_retry_after(made: Any) -> None:
    cards, chat = made
    await cards.observe(PAUSED)
    chat.update_errors = [
        TemporaryError("rate-limited", delay=0.05),
        TemporaryError("rate-limited", delay=0.05),
    ]
    await cards.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")
    lines = [p["text"] for p in chat.posts if p["thread_ts"] is not None]
    assert lines[-1].endswith("Aborted by <@U0ONCALL>")  # the line did not wait
    assert chat.updates == [] and not cards.settled()

    await settle(cards)
    assert chat.update_attempts == 3
    assert len(chat.updates) == 1 and "Aborted" in chat.updates[0]
    assert "<@U0ONCALL>" in chat.updates[0]


async def test_close_sends_once_and_schedules_nothing(made: Any) -> None:
    cards, chat = made
    await cards.observe(PAUSED)
    chat.update_errors = [TemporaryError("rate-limited", delay=30.0)] * 2
    await cards.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")
    await cards.close()
    assert chat.update_attempts == 2 and chat.updates == []
    assert cards.settled()


INCIDENT = Incident(
    service=SERVICE,
    namespace="payments",
    rollout="payment-router",
    revision=42,
    state=IncidentState.OPEN,
    opened_at=NOW,
    changed_at=NOW,
    firing=frozenset({"rollout"}),
    seen=frozenset({"rollout"}),
    first_breach_at=None,
)


async def test_an_older_incident_does_not_take_the_card_back(made: Any) -> None:
    cards, chat = made
    opened = INCIDENT
    recovering = dataclasses.replace(
        opened,
        state=IncidentState.RECOVERING,
        changed_at=NOW + timedelta(seconds=5),
        firing=frozenset(),
    )
    resolved = dataclasses.replace(
        recovering, state=IncidentState.RESOLVED, changed_at=NOW + timedelta(seconds=305)
    )
    await cards.incident_changed(SERVICE, PAUSED, opened, line="Incident opened")
    await cards.incident_changed(SERVICE, ABORTED, resolved, line="Resolved")
    await cards.incident_changed(SERVICE, ABORTED, recovering)  # late
    await settle(cards)
    assert "resolved" in chat.updates[-1].lower()
    assert "recovering" not in chat.updates[-1].lower()


def lines(chat: FlakyChat) -> list[str]:
    return [p["text"].split("` ", 1)[1] for p in chat.posts if p["thread_ts"] is not None]


async def test_a_card_slack_did_not_take_is_posted_by_its_flush(made: Any) -> None:
    cards, chat = made
    chat.post_errors = [TemporaryError("rate-limited", delay=0.1)] * 2
    with pytest.raises(TemporaryError):
        await cards.observe(PAUSED)  # the caller is told at once, and goes on (pages)
    assert chat.posts == [] and not cards.settled()
    await settle(cards)
    cards_posted = [p for p in chat.posts if p["thread_ts"] is None]
    assert [p["key"] for p in cards_posted] == ["payments/payment-router@42"]
    assert lines(chat) == [summary_line(PAUSED)]
    assert chat.looks >= 1  # looked before posting again


async def test_lines_slack_did_not_take_wait_in_order(made: Any) -> None:
    cards, chat = made
    await cards.observe(PAUSED)
    chat.post_errors = [TemporaryError("rate-limited", delay=0.1)] * 2
    await cards.report(SERVICE, ABORTED, ABORT, "Aborted by <@U0ONCALL>")
    assert lines(chat) == [summary_line(PAUSED)]  # left to the flush
    await cards.incident_changed(SERVICE, ABORTED, INCIDENT, line="Incident opened")
    await settle(cards)
    assert lines(chat) == [summary_line(PAUSED), "Aborted by <@U0ONCALL>", "Incident opened"]
