"""Tier 2 flips left `running` by a process that was killed (issue 15), settled by the leader's
recovery as Tier 1's Rollout commands are, reading the flag back from a real provider API:
the LaunchDarkly sim (bot/sim/launchdarkly.py) through `LaunchDarklyFlags`, and a real
Unleash server (tests/peers) through `UnleashFlags`.

Aspects under test:
- before recovery, a click of the action a killed process left running is told "already
  running" (the flag's epoch never moved on): the flip is blocked until it is settled;
- a claim older than asked whose flip reached the provider is settled `succeeded` by
  reading the flag back (nothing is sent again): audited once as recovered, the flag's
  epoch moved on, the card's outcome verified, one thread line saying rollbot restarted,
  the listeners (PagerDuty notes) told once; a second sweep settles nothing; the next
  click (circuit close) flips;
- a claim whose flip never reached the provider is settled `failed` ("may never have been
  sent"), the card says NOT verified, and the same action asked again flips, once;
- a young claim, another tier's claim, and a claim whose flag cannot be read yet (the
  provider answering 429) are left running, and nothing is audited;
- a break-glass modal's two claims (its submission's and its flip's) are both settled, the
  flip audited, told and reported once;
- a flip another came after (the flag's epoch moved on meanwhile) is settled `failed`
  without touching the card that shows the later flip, and the epoch stays where it is;
- the same against a real Unleash server, flip reached or not.

The Rollouts and Chat ports are small in-memory fakes (rollbot's own Protocols, not an
SDK); the flag adapters are the real ones over HTTP; the store is the real SqlStore on a
SQLite file.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.actions import ActionResult, FlagRequest, Responder
from bot.adapters.launchdarkly import LaunchDarklyFlags
from bot.adapters.unleash import UnleashFlags
from bot.cards import Cards, card_key
from bot.core import rollouts as core_rollouts
from bot.core.model import Actor, FlagAction, MessageRef, Patch, RolloutAction, RolloutState
from bot.core.ports import Flags
from bot.settings import ServiceSettings
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.store import SqlStore, open_store
from tests.plugins.unleash import UnleashPeer

pytestmark = pytest.mark.timeout(60)

SERVICE = "payment-router"
FLAG = "payments.new-router.circuit-open"
RELEASE = "payments.new-router.enabled"
KEY = "payments/payment-router@7"  # the Rollout's card
COUNTER = f"flag:{SERVICE}:{FLAG}"  # where the flag's epoch is counted
OPEN_KEY = f"{COUNTER}:circuit-open#0"  # the flip's claim at the flag's epoch 0
ONCALL = Actor("U0ONCALL", "oncall")
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
        "phase": "Paused",
        "observedGeneration": "3",
        "currentStepIndex": 1,
        "stableRS": "aaa",
        "currentPodHash": "bbb",
        "pauseConditions": [{"reason": "InconclusiveAnalysisRun"}],
        "canary": {"weights": {"canary": {"weight": 10}}},
    },
}


class FakeRollouts:
    """The one Rollout, read only (Tier 2 reads it to find the card)."""

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        return core_rollouts.parse_rollout(copy.deepcopy(ROLLOUT))

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        raise AssertionError("Tier 2's recovery never patches the Rollout")


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

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
        return None

    async def post_ephemeral(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        return frozenset({ONCALL.id})

    async def user_name(self, user_id: str) -> str:
        return user_id

    def thread(self) -> list[str]:
        return [p["text"] for p in self.posts if p["thread_ts"]]


@dataclass
class World:
    responder: Responder
    store: SqlStore
    chat: FakeChat
    cards: Cards
    told: list[tuple[str, str]] = field(default_factory=list)  # (action, result status)


async def _world(store: SqlStore, flags: Flags) -> World:
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments",
            rollout="payment-router",
            channel="#payments-deploys",
            owners={"slack_usergroup": "S0PAYMENTS"},
            flags={"circuit": FLAG, "release": RELEASE},
        )
    }
    chat = FakeChat()
    cards = Cards(
        chat=chat,
        store=store,
        catalog=catalog,
        circuit_available=True,
        circuit_environment="production",
    )
    told: list[tuple[str, str]] = []

    async def listener(
        service: str, action: str, actor: Actor, result: ActionResult, card: str | None
    ) -> None:
        told.append((action, result.status))

    responder = Responder(
        catalog=catalog,
        rollouts=FakeRollouts(),  # type: ignore[arg-type]
        chat=chat,  # type: ignore[arg-type]
        store=store,
        cards=cards,
        flags=flags,
        sdk_wait=0.1,
        listeners=[listener],
    )
    state = core_rollouts.parse_rollout(copy.deepcopy(ROLLOUT))
    assert card_key(state) == KEY and core_rollouts.trouble(state) is not None
    assert await cards.observe(state) is not None  # the card, posted before the flip
    return World(responder, store, chat, cards, told)


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[SqlStore]:
    s = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield s
    await s.close()


@pytest.fixture
def ld() -> Iterator[LaunchDarklySim]:
    with LaunchDarklySim() as sim:
        sim.add_flag("default", FLAG, on=False)
        sim.add_flag("default", RELEASE, on=True)
        yield sim


@pytest.fixture
async def world(store: SqlStore, ld: LaunchDarklySim) -> AsyncIterator[World]:
    async with LaunchDarklyFlags(
        base_url=ld.url, api_token=DEFAULT_TOKEN, project="default", environment="production"
    ) as flags:
        yield await _world(store, flags)


async def _left_running(
    store: SqlStore, key: str = OPEN_KEY, *, action: str = "circuit-open", provider: str
) -> str:
    """A claim as a process killed right after winning it leaves it (no audit, no result)."""
    claim = await store.claim_action(
        key,
        service=SERVICE,
        target=f"{provider}:{FLAG}",
        action=action,
        actor_id=ONCALL.id,
        actor_name=ONCALL.name,
        source="slack",
    )
    assert claim.won
    return key


def flip(action: FlagAction = FlagAction.CIRCUIT_OPEN) -> FlagRequest:
    return FlagRequest(SERVICE, action, ONCALL)


def patches(ld: LaunchDarklySim) -> list[Any]:
    """The flips LaunchDarkly received: their semantic-patch instructions."""
    return [r.body["instructions"] for r in ld.requests if r.method == "PATCH"]


async def flip_entries(store: SqlStore, action: str = "circuit-open") -> list[Any]:
    """The audit entries of executed (or settled) flips: not the duplicates."""
    return [
        r.entry
        for r in await store.audit_entries()
        if r.entry.action == action and r.entry.result != "duplicate"
    ]


async def flag_epoch(store: SqlStore) -> int:
    record = await store.get_card(COUNTER)
    return record.epoch if record is not None else 0


def _far() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def test_a_flip_left_running_is_read_back_audited_and_shown(world, ld):
    key = await _left_running(world.store, provider="launchdarkly")
    ld.set_on("default", FLAG, "production", True)  # the dead process's flip reached LD

    # Until it is settled, the action is blocked: the flag's epoch never moved on.
    blocked = await world.responder.handle_flag(flip())
    assert blocked.status == "duplicate" and "already running" in blocked.message
    assert await world.responder.recover(older_than=3600) == 0  # could still be running

    assert await world.responder.recover(older_than=0) == 1
    record = await world.store.get_action(key)
    assert record is not None and record.status == "succeeded"
    assert "ended before it recorded the result" in record.result["recovered"]
    entries = await flip_entries(world.store)
    assert [e.result for e in entries] == ["succeeded"]
    assert entries[0].detail["recovered"] and entries[0].detail["idempotency_key"] == key
    assert entries[0].after["enabled"] is True and entries[0].after["flag"] == FLAG
    assert entries[0].actor == f"slack:{ONCALL.id}:{ONCALL.name}"
    assert await flag_epoch(world.store) == 1
    card = await world.store.get_card(KEY)
    assert card is not None and card.outcome is not None
    assert card.outcome.action is FlagAction.CIRCUIT_OPEN and card.outcome.verified
    lines = [t for t in world.chat.thread() if "Opened the circuit" in t]
    assert len(lines) == 1, world.chat.thread()
    assert f"`{FLAG}` (production) by <@{ONCALL.id}> · read back on" in lines[0]
    assert "rollbot restarted before it could check" in lines[0]
    assert "all traffic takes the legacy path" in lines[0]
    assert world.told == [("circuit-open", "succeeded")]
    assert patches(ld) == []  # read back only: nothing is sent again
    assert await world.responder.recover(older_than=0) == 0  # settled once

    closed = await world.responder.handle_flag(flip(FlagAction.CIRCUIT_CLOSE))
    assert closed.status == "succeeded" and not ld.is_on("default", FLAG)
    assert patches(ld) == [[{"kind": "turnFlagOff"}]]


async def test_a_flip_left_running_without_its_effect_is_not_verified(world, ld):
    key = await _left_running(world.store, provider="launchdarkly")  # killed before its PATCH
    assert await world.responder.recover(older_than=0) == 1
    record = await world.store.get_action(key)
    assert record is not None and record.status == "failed"
    entries = await flip_entries(world.store)
    assert [e.result for e in entries] == ["failed"]
    assert "may never have been sent" in entries[0].detail["error"]
    assert entries[0].after["enabled"] is False
    assert await flag_epoch(world.store) == 1
    card = await world.store.get_card(KEY)
    assert card is not None and card.outcome is not None and not card.outcome.verified
    lines = [t for t in world.chat.thread() if "NOT verified" in t]
    assert len(lines) == 1, world.chat.thread()
    assert f"Circuit-open by <@{ONCALL.id}> NOT verified: rollbot restarted" in lines[0]
    assert f"`{FLAG}` reads back off" in lines[0]
    assert world.told == [("circuit-open", "failed")]

    # The flag's epoch moved on: the flip can be asked for again, and it runs, once.
    result = await world.responder.handle_flag(flip())
    assert result.status == "succeeded" and ld.is_on("default", FLAG)
    assert patches(ld) == [[{"kind": "turnFlagOn"}]]


async def test_young_claims_other_tiers_and_an_unreadable_flag_wait(world, ld):
    key = await _left_running(world.store, provider="launchdarkly")
    revert = await _left_running(
        world.store, f"{KEY}:revert-started", action="revert-started", provider="git"
    )
    shown = list(world.chat.posts)  # the card and its first line
    assert await world.responder.recover(older_than=3600) == 0  # could still be running
    ld.force_429(1, retry_after=60)  # LaunchDarkly says: not now
    assert await world.responder.recover(older_than=0) == 0  # read back later, not guessed
    assert [r.key for r in await world.store.running_actions(before=_far())] == [key, revert]
    assert await world.store.audit_entries() == []
    assert world.chat.posts == shown and world.told == []

    ld.set_on("default", FLAG, "production", True)
    assert await world.responder.recover(older_than=0) == 1
    assert [r.key for r in await world.store.running_actions(before=_far())] == [revert]


async def test_a_break_glass_flip_left_running_settles_both_its_claims_once(world, ld):
    submission = await _left_running(
        world.store, f"{COUNTER}:circuit-open@V0MODAL#1700000000.abc", provider="launchdarkly"
    )
    key = await _left_running(world.store, provider="launchdarkly")
    ld.set_on("default", FLAG, "production", True)
    assert await world.responder.recover(older_than=0) == 2
    for k in (submission, key):
        record = await world.store.get_action(k)
        assert record is not None and record.status == "succeeded", record
    assert [e.result for e in await flip_entries(world.store)] == ["succeeded"]
    assert len([t for t in world.chat.thread() if "Opened the circuit" in t]) == 1
    assert world.told == [("circuit-open", "succeeded")]
    assert await flag_epoch(world.store) == 1
    assert await world.responder.recover(older_than=0) == 0


async def test_a_flip_another_came_after_is_settled_without_touching_the_card(world, ld):
    key = await _left_running(world.store, provider="launchdarkly")
    ld.set_on("default", FLAG, "production", True)  # the dead process's flip reached LD
    closed = await world.responder.handle_flag(flip(FlagAction.CIRCUIT_CLOSE))
    assert closed.status == "succeeded" and await flag_epoch(world.store) == 1
    shown = list(world.chat.posts)

    assert await world.responder.recover(older_than=0) == 1
    record = await world.store.get_action(key)
    assert record is not None and record.status == "failed"
    entries = await flip_entries(world.store)
    assert [e.result for e in entries] == ["failed"]
    assert "another flip was settled since" in entries[0].detail["error"]
    card = await world.store.get_card(KEY)
    assert card is not None and card.outcome is not None
    assert card.outcome.action is FlagAction.CIRCUIT_CLOSE and card.outcome.verified
    assert world.chat.posts == shown  # nothing said: the card shows the close
    assert await flag_epoch(world.store) == 1
    assert world.told == [("circuit-close", "succeeded"), ("circuit-open", "failed")]


@pytest.mark.parametrize("reached", [True, False], ids=["flip-reached", "never-sent"])
async def test_a_flip_left_running_is_read_back_from_a_real_unleash(
    reached: bool, store: SqlStore, unleash_peer: UnleashPeer
):
    unleash_peer.create_flag(FLAG, enabled=reached)
    async with UnleashFlags(
        base_url=unleash_peer.url,
        admin_token=unleash_peer.admin_token,
        project=unleash_peer.project,
        environment=unleash_peer.environment,
    ) as flags:
        world = await _world(store, flags)
        key = await _left_running(store, provider="unleash")
        blocked = await world.responder.handle_flag(flip())
        assert blocked.status == "duplicate" and "already running" in blocked.message

        assert await world.responder.recover(older_than=0) == 1
        record = await store.get_action(key)
        assert record is not None
        assert record.status == ("succeeded" if reached else "failed")
        assert [e.result for e in await flip_entries(store)] == [record.status]
        thread = world.chat.thread()
        said = "read back on" if reached else "reads back off"
        assert len([t for t in thread if said in t and "rollbot restarted" in t]) == 1, thread
        assert unleash_peer.flag_enabled(FLAG) is reached  # nothing was sent again

        # The next click acts: closes what was opened, or opens what never was.
        action = FlagAction.CIRCUIT_CLOSE if reached else FlagAction.CIRCUIT_OPEN
        result = await world.responder.handle_flag(flip(action))
        assert result.status == "succeeded", result.message
        assert unleash_peer.flag_enabled(FLAG) is not reached
