"""Tier 3 recorded once per card revision, and shown on the card (issue 14).

Aspects under test:
- one revert per revision: a second record (another person's modal, the same person's
  second modal, two submissions at once) is a `duplicate`, audited as such, and its
  message says who started the first, when, with its link (escaped); nothing more is
  recorded, nothing more is written in the thread, the listeners are told once;
- the winner's answer is exactly `revert_recorded_text` (the PagerDuty note says it);
- a record without a revision is filed under the Rollout's revision now, so a record from
  its card is a duplicate of it;
- `revert_already_started` (asked before the modal opens) names the first, or None;
- the card: re-rendered at once with who started the revert and its link, without
  "Record Tier 3 revert…"; after a restart (a fresh `Cards` on the same store) its next
  render reads the revert from the store and still shows it.

The Rollouts and Chat ports are small in-memory fakes (rollbot's own Protocols, not an
SDK); the store is the real SqlStore on a SQLite file.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from bot.actions import ActionResult, Responder, RevertRequest
from bot.blocks import replies
from bot.cards import Cards
from bot.core import rollouts as core_rollouts
from bot.core.model import Actor, MessageRef, Patch, RolloutAction, RolloutState
from bot.settings import ServiceSettings
from bot.store import SqlStore, open_store

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
KEY = "payments/payment-router@7"
LINK = "https://github.com/acme/gitops/pull/812?a=1&b=<2>"
SHOWN = (
    "<https://github.com/acme/gitops/pull/812?a=1&amp;b=%3C2%3E|"
    "https://github.com/acme/gitops/pull/812?a=1&amp;b=&lt;2&gt;>"
)
ONCALL = Actor("U0ONCALL", "oncall")
LEAD = Actor("U0LEAD", "lead")
ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {
        "namespace": "payments",
        "name": "payment-router",
        "generation": 3,
        "resourceVersion": "100",
        "annotations": {"rollout.argoproj.io/revision": "7"},
    },
    "spec": {
        "replicas": 4,
        "strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
        "template": {"spec": {"containers": [{"name": "app", "image": "router:2"}]}},
    },
    "status": {
        "phase": "Degraded",
        "message": "RolloutAborted: aborted",
        "abort": True,
        "observedGeneration": "3",
        "currentStepIndex": 1,
        "stableRS": "aaa",
        "currentPodHash": "bbb",
        "canary": {"weights": {"canary": {"weight": 0}}},
    },
}


class FakeRollouts:
    def __init__(self) -> None:
        self.obj = copy.deepcopy(ROLLOUT)

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        return core_rollouts.parse_rollout(self.obj)

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        raise AssertionError("Tier 3 applies nothing")


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    async def post(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        key: str | None = None,
    ) -> MessageRef:
        self.posts.append({"channel": channel, "text": text, "thread_ts": thread_ts})
        return MessageRef("C0PAYMENTS", f"1700000000.{len(self.posts):06d}")

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        self.updates.append({"ts": ref.ts, "text": text, "blocks": blocks})

    async def post_ephemeral(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        return frozenset({ONCALL.id, LEAD.id})

    async def user_name(self, user_id: str) -> str:
        return user_id

    def thread_lines(self) -> list[str]:
        return [p["text"] for p in self.posts if p["thread_ts"] is not None]


@pytest.fixture
async def store(tmp_path):
    s = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield s
    await s.close()


CATALOG = {
    SERVICE: ServiceSettings(
        namespace="payments",
        rollout="payment-router",
        channel="#payments-deploys",
        owners={"slack_usergroup": "S0PAYMENTS"},
    )
}


def build(
    store: SqlStore, told: list[str] | None = None
) -> tuple[Responder, FakeRollouts, FakeChat, Cards]:
    rollouts, chat = FakeRollouts(), FakeChat()
    cards = Cards(chat=chat, store=store, catalog=CATALOG, update_interval=0.0)  # type: ignore[arg-type]

    async def listener(
        service: str, action: str, actor: Actor, result: ActionResult, card: str | None
    ) -> None:
        if told is not None:
            told.append(f"{action} {result.status}: {result.message}")

    responder = Responder(
        catalog=CATALOG,
        rollouts=rollouts,  # type: ignore[arg-type]
        chat=chat,  # type: ignore[arg-type]
        store=store,
        cards=cards,
        listeners=[listener],
    )
    return responder, rollouts, chat, cards


def revert(
    actor: Actor = ONCALL, submission: str = "V1#h1", revision: int | None = 7, url: str = LINK
) -> RevertRequest:
    return RevertRequest(
        service=SERVICE,
        actor=actor,
        url=url,
        note="tax engine",
        revision=revision,
        submission=submission,
    )


async def entries(store: SqlStore) -> list[tuple[str, str]]:
    return [
        (r.entry.result, r.entry.actor.split(":")[1])
        for r in await store.audit_entries()
        if r.entry.action == "revert-started"
    ]


async def test_a_second_record_says_who_started_the_first(store):
    told: list[str] = []
    responder, _, chat, _ = build(store, told)
    first = await responder.record_revert(revert())
    assert first.status == "succeeded"
    assert first.message == replies.revert_recorded_text(
        service=SERVICE, revision=7, url=LINK, sha=None, note="tax engine"
    )
    assert first.record is not None and first.record.key == "revert:payments/payment-router@7"

    # Another person, and the same person again, from modals of their own.
    for actor, submission in [(LEAD, "V2#h2"), (ONCALL, "V3#h3")]:
        second = await responder.record_revert(
            revert(actor, submission, url="https://github.com/acme/gitops/pull/999")
        )
        assert second.status == "duplicate"
        assert second.record is not None and second.record.actor_id == ONCALL.id
        when = first.record.finished_at
        assert when is not None
        assert second.message == (
            "A Tier 3 revert of `payment-router` revision 7 was already started by <@U0ONCALL> "
            f"at {when:%H:%M:%S} UTC: {SHOWN}. Nothing more was recorded; follow that one on "
            "the card."
        )
        assert "pull/999" not in second.message

    assert await entries(store) == [
        ("succeeded", "U0ONCALL"),
        ("duplicate", "U0LEAD"),
        ("duplicate", "U0ONCALL"),
    ]
    assert len([line for line in chat.thread_lines() if ":rewind:" in line]) == 0  # no card
    assert len([p for p in chat.posts if ":rewind:" in p["text"]]) == 1
    assert told == [f"revert-started succeeded: {first.message}"]  # the PagerDuty note once


async def test_two_submissions_at_once_record_one(store):
    responder, _, chat, _ = build(store)
    results = await asyncio.gather(
        responder.record_revert(revert(ONCALL, "V1#h1")),
        responder.record_revert(revert(LEAD, "V2#h2", url="https://git.example/other/1")),
    )
    assert sorted(r.status for r in results) == ["duplicate", "succeeded"]
    winner = next(r for r in results if r.status == "succeeded")
    loser = next(r for r in results if r.status == "duplicate")
    assert winner.record is not None
    url = winner.record.result["url"]
    assert f"started by <@{winner.record.actor_id}>" in loser.message
    assert f"<{url.replace('&', '&amp;').replace('<', '%3C').replace('>', '%3E')}|" in (
        loser.message
    )  # the first's link, waited for while it was being recorded
    assert len([p for p in chat.posts if ":rewind:" in p["text"]]) == 1


async def test_without_a_revision_the_rollouts_revision_now(store):
    responder, _, _, _ = build(store)
    first = await responder.record_revert(revert(revision=None))
    assert first.status == "succeeded"
    assert first.record is not None and first.record.key == "revert:payments/payment-router@7"
    from_card = await responder.record_revert(revert(LEAD, "V2#h2", revision=7))
    assert from_card.status == "duplicate" and "<@U0ONCALL>" in from_card.message


async def test_already_started_is_asked_before_the_modal_opens(store):
    responder, _, _, _ = build(store)
    assert await responder.revert_already_started(SERVICE, 7) is None
    await responder.record_revert(revert())
    already = await responder.revert_already_started(SERVICE, 7)
    assert already is not None
    assert already.startswith("A Tier 3 revert of `payment-router` revision 7 was already")
    assert "<@U0ONCALL>" in already and SHOWN in already
    assert await responder.revert_already_started(SERVICE, 8) is None  # another revision


def shown_on(update: dict[str, Any]) -> tuple[str, set[str]]:
    """(the card's blocks as text, its buttons' action ids)."""
    blocks = update["blocks"]
    ids = {
        el.get("action_id")
        for block in blocks
        if block["type"] == "actions"
        for el in block["elements"]
    }
    return json.dumps(blocks, ensure_ascii=False), ids


async def test_the_card_shows_the_revert_and_keeps_it_after_a_restart(store):
    responder, rollouts, chat, cards = build(store)
    state = await rollouts.get_state("payments", "payment-router")
    card = await cards.observe(state)  # aborted: the card is posted
    assert card is not None and card.card_key == KEY
    assert chat.updates == []

    await responder.record_revert(revert(LEAD))
    text, ids = shown_on(chat.updates[-1])
    assert ":rewind: Tier 3 revert started by <@U0LEAD> at " in text and SHOWN in text
    assert "revert_open" not in ids and "runbook_open" not in ids  # (no runbook configured)
    assert "👉 *Next: watch the Tier 3 revert land*" in text
    assert "Tier 3 revert started by <@U0LEAD>" in chat.updates[-1]["text"]

    # A restart: a fresh card engine over the same store; the Rollout changes, the card
    # is rendered again and still shows the revert, read from the store.
    fresh_chat = FakeChat()
    fresh = Cards(chat=fresh_chat, store=store, catalog=CATALOG)  # type: ignore[arg-type]
    rollouts.obj["status"]["message"] = "RolloutAborted: aborted by oncall"
    await fresh.observe(await rollouts.get_state("payments", "payment-router"))
    assert fresh_chat.updates, "the changed Rollout re-renders the card"
    text, ids = shown_on(fresh_chat.updates[-1])
    assert "Tier 3 revert started by <@U0LEAD>" in text and SHOWN in text
    assert "revert_open" not in ids


async def test_before_any_revert_the_card_offers_to_record_one(store):
    """The control for the test above: the same card, no revert, offers the button."""
    _, rollouts, chat, cards = build(store)
    state = await rollouts.get_state("payments", "payment-router")
    card = await cards.observe(state)
    assert card is not None
    rollouts.obj["status"]["message"] = "RolloutAborted: aborted by oncall"
    await cards.observe(await rollouts.get_state("payments", "payment-router"))
    text, _ = shown_on(chat.updates[-1])
    assert '"action_id": "revert_open"' in text and "revert started" not in text
