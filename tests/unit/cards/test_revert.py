"""bot.cards.Cards for a recorded Tier 3 revert: the thread line and the reply text.

The action pipeline (bot.actions) builds no Slack text itself: it hands the revert's plain
values to the card, which formats them with the Block Kit builders.

Aspects under test:
- the thread line is exactly `timeline_line(revert_line(...))`, stamped with the time given;
- where it goes: the card it was recorded from (channel + message ts), else the card of the
  revision (read from the store), else top-level in the service's channel;
- a Slack failure writing it is logged, never raised (the record is already kept);
- the reply text is exactly `revert_recorded_text(...)`;
- the answer to a second record is exactly `revert_already_text(...)` with the first's
  actor, time and link, read from its action record (no link while it is still being
  recorded); `revert_started` reads the card's revert from a finished record only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from bot.blocks import replies as blocks
from bot.cards import Cards, revert_started
from bot.core.errors import TemporaryError
from bot.core.model import MessageRef, RevertStarted
from bot.core.ports import ActionRecord, CardRecord
from bot.settings import ServiceSettings

SERVICE = "payment-router"
AT = datetime(2025, 3, 1, 3, 4, 5, tzinfo=UTC)
URL = "https://git.example.com/acme/gitops/pull/7?a=1&b=<2>"
NOTE = "<!channel> reverting *now*"
LINE = blocks.timeline_line(at=AT, text=blocks.revert_line(actor_id="U0ONCALL", url=URL, note=NOTE))


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.error: Exception | None = None

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        if self.error is not None:
            raise self.error
        self.posts.append({"channel": channel, "text": text, "thread_ts": thread_ts})
        return MessageRef(channel, "1700000000.000001")


class FakeStore:
    def __init__(self, cards: dict[str, CardRecord]) -> None:
        self.cards = cards
        self.marked: list[str] = []

    async def get_card(self, key: str) -> CardRecord | None:
        return self.cards.get(key)

    async def mark_card_dirty(self, key: str) -> None:
        if key not in self.cards:
            raise LookupError(key)
        self.marked.append(key)


def build(cards: dict[str, CardRecord] | None = None) -> tuple[Cards, FakeChat]:
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments", rollout="payment-router", channel="#payments-deploys"
        )
    }
    chat = FakeChat()
    store = FakeStore(cards or {})
    return Cards(chat=cast(Any, chat), store=cast(Any, store), catalog=catalog), chat


async def test_the_line_goes_under_the_card_it_was_recorded_from() -> None:
    cards, chat = build()
    await cards.revert_started(
        SERVICE,
        actor_id="U0ONCALL",
        url=URL,
        note=NOTE,
        revision=7,
        channel="C0CARD",
        message_ts="1700000000.000100",
        at=AT,
    )
    assert chat.posts == [{"channel": "C0CARD", "text": LINE, "thread_ts": "1700000000.000100"}]


async def test_else_under_the_card_of_the_revision() -> None:
    record = CardRecord(
        "payments/payment-router@7", SERVICE, "C0PAYMENTS", "1700000000.000200", "", 1
    )
    cards, chat = build({record.card_key: record})
    await cards.revert_started(SERVICE, actor_id="U0ONCALL", url=URL, note=NOTE, revision=7, at=AT)
    assert chat.posts == [{"channel": "C0PAYMENTS", "text": LINE, "thread_ts": "1700000000.000200"}]
    # Not shown by this process: marked for the leader's loop, which renders it.
    assert cast(Any, cards)._store.marked == [record.card_key]


@pytest.mark.parametrize("revision", [None, 8], ids=["no-revision", "no-card"])
async def test_else_in_the_service_channel(revision: int | None) -> None:
    cards, chat = build()
    await cards.revert_started(
        SERVICE, actor_id="U0ONCALL", url=URL, note=NOTE, revision=revision, at=AT
    )
    assert chat.posts == [{"channel": "#payments-deploys", "text": LINE, "thread_ts": None}]


async def test_a_slack_failure_is_not_raised() -> None:
    cards, chat = build()
    chat.error = TemporaryError("Slack is down")
    await cards.revert_started(SERVICE, actor_id="U0ONCALL", url=URL, note=NOTE, at=AT)
    assert chat.posts == []


def test_the_reply_is_the_block_kit_text() -> None:
    kw: dict[str, Any] = {"service": SERVICE, "revision": 7, "url": URL, "sha": "abc"}
    assert Cards.revert_recorded_text(**kw, note=NOTE) == blocks.revert_recorded_text(
        **kw, note=NOTE
    )
    assert Cards.revert_recorded_text(**kw) == blocks.revert_recorded_text(**kw)


def winner(status: str = "succeeded", **result: Any) -> ActionRecord:
    done = status != "running"
    return ActionRecord(
        key="revert:payments/payment-router@7",
        service=SERVICE,
        target="payments/payment-router@7",
        action="revert-started",
        actor_id="U0ONCALL",
        actor_name="oncall",
        source="slack",
        status=status,
        requested_at=datetime(2025, 3, 1, 3, 4, 0, tzinfo=UTC),
        finished_at=AT if done else None,
        result=result,
    )


def test_a_second_record_is_told_who_started_the_first() -> None:
    kw: dict[str, Any] = {"service": SERVICE, "revision": 7, "actor_id": "U0ONCALL"}
    assert Cards.revert_already_text(
        service=SERVICE, revision=7, winner=winner(url=URL)
    ) == blocks.revert_already_text(**kw, at=AT, url=URL)
    running = Cards.revert_already_text(service=SERVICE, revision=7, winner=winner("running"))
    assert running == blocks.revert_already_text(
        **kw, at=datetime(2025, 3, 1, 3, 4, 0, tzinfo=UTC), url=None
    )


def test_the_cards_revert_comes_from_a_finished_record() -> None:
    assert revert_started(winner(url=URL)) == RevertStarted("U0ONCALL", URL, AT)
    assert revert_started(winner("running")) is None
    assert revert_started(None) is None
    assert revert_started(winner(url=7)) == RevertStarted("U0ONCALL", "", AT)
