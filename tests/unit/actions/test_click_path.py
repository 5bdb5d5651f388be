"""The click path's own share (issue 17): what the pipeline asks at once, and how few
transactions it writes.

Aspects under test:
- authorisation asks Slack (the owners group) and PagerDuty (who is on call) at once, and
  the Slack ids of the on-call emails at once;
- Tier 1 (abort): the authorisation, the read of the Rollout before and the epoch of the
  card the button names run at once; the
  audit entry is written in the transaction that finishes the claim (no transaction of
  its own);
- Tier 2 (open the circuit): the authorisation, the read of the flag before and the flag's
  epoch run at once,
  and the Rollout whose card tells the flip is read while the flag is set; the audit
  entry, the claim's result and the flag's next epoch are one transaction; a retried
  modal submission's claim, lost, is audited in the transaction of the claim;
- the one read-back stays: Tier 1 reads the Rollout after its patch, Tier 2 returns what
  the provider read back after its write.

"At once" is proven by a rendezvous: each read named waits (up to 2 s) until all of them
have started, so reads made one after the other fail the test instead of passing slower.
Transactions are counted on the real SqlStore (SQLite file): each BEGIN starts a list of
the statements that follow it. The Rollouts, Chat, OnCall and Flags ports are small
in-memory fakes (rollbot's own Protocols, not an SDK).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from bot.actions import ActionRequest, FlagRequest, Responder
from bot.cards import Cards
from bot.core import rollouts as core_rollouts
from bot.core.model import (
    Actor,
    FlagAction,
    FlagState,
    MessageRef,
    Patch,
    RolloutAction,
    RolloutState,
)
from bot.settings import ServiceSettings
from bot.store import SqlStore, open_store

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
FLAG = "payments.new-router.circuit-open"
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
        "pauseConditions": [{"reason": "CanaryPauseStep"}],
        "canary": {"weights": {"canary": {"weight": 10}}},
    },
}


class Rendezvous:
    """Reads that must all have started before any of them may answer."""

    def __init__(self, *names: str) -> None:
        self.expected = set(names)
        self.started: set[str] = set()
        self._all = asyncio.Event()

    async def arrive(self, name: str) -> None:
        if name not in self.expected:
            return
        self.started.add(name)
        if self.started >= self.expected:
            self._all.set()
        try:
            await asyncio.wait_for(self._all.wait(), 2.0)
        except TimeoutError:
            missing = sorted(self.expected - self.started)
            raise AssertionError(f"{name} was asked alone: {missing} not asked meanwhile") from None


NOBODY = Rendezvous()


class FakeRollouts:
    def __init__(self) -> None:
        self.obj = copy.deepcopy(ROLLOUT)
        self.reads = 0
        self.rendezvous = NOBODY

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        self.reads += 1
        await self.rendezvous.arrive("rollout")
        return core_rollouts.parse_rollout(self.obj)

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        patches = core_rollouts.plan(action, self.obj)
        status = self.obj["status"]
        status.update(abort=True, phase="Degraded", message="RolloutAborted: aborted")
        status["canary"]["weights"]["canary"]["weight"] = 0
        return patches


class FakeChat:
    def __init__(self) -> None:
        self.rendezvous = NOBODY

    async def post(self, channel: str, *, text: str, **_: Any) -> MessageRef:
        return MessageRef("C0PAYMENTS", "1700000000.000001")

    async def update(self, ref: MessageRef, *, text: str, blocks: list[dict[str, Any]]) -> None:
        return None

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        await self.rendezvous.arrive("members")
        return frozenset({"U0LEAD"})

    async def user_id_by_email(self, email: str) -> str | None:
        await self.rendezvous.arrive(email)
        return {"oncall@example.com": "U0ONCALL", "second@example.com": "U0SECOND"}.get(email)

    async def user_name(self, user_id: str) -> str:
        return user_id


class FakeOnCall:
    def __init__(self) -> None:
        self.rendezvous = NOBODY

    async def on_call_emails(self, escalation_policy_id: str) -> frozenset[str]:
        await self.rendezvous.arrive("on_call")
        return frozenset({"oncall@example.com", "second@example.com"})


class FakeFlags:
    provider = "unleash"

    def __init__(self) -> None:
        self.enabled = False
        self.rendezvous = NOBODY
        self.writes = 0

    def _state(self) -> FlagState:
        return FlagState(FLAG, "default", "production", self.enabled, self.provider)

    async def get(self, flag: str) -> FlagState:
        await self.rendezvous.arrive("flag")
        return self._state()

    async def set(self, flag: str, enabled: bool, *, comment: str) -> FlagState:
        await self.rendezvous.arrive("set")
        self.enabled = enabled
        self.writes += 1
        return self._state()  # the provider's read-back: the proof

    async def sdk_sees(self, flag: str) -> bool | None:
        return None


class MeetingCards(Cards):
    """The real cards, whose epoch read also meets the rendezvous."""

    rendezvous = NOBODY

    async def epoch(self, key: str) -> int:
        await self.rendezvous.arrive("epoch")
        return await super().epoch(key)


class World:
    def __init__(self, store: SqlStore) -> None:
        catalog = {
            SERVICE: ServiceSettings(
                namespace="payments",
                rollout="payment-router",
                channel="#payments-deploys",
                owners={"slack_usergroup": "S0PAYMENTS"},
                pagerduty={"escalation_policy_id": "PESC123"},
                flags={"circuit": FLAG},
            )
        }
        self.store = store
        self.rollouts, self.chat = FakeRollouts(), FakeChat()
        self.on_call, self.flags = FakeOnCall(), FakeFlags()
        self.cards = MeetingCards(chat=self.chat, store=store, catalog=catalog)  # type: ignore[arg-type]
        self.responder = Responder(
            catalog=catalog,
            rollouts=self.rollouts,  # type: ignore[arg-type]
            chat=self.chat,  # type: ignore[arg-type]
            store=store,
            cards=self.cards,
            verify_timeout=2.0,
            poll_interval=0.01,
            on_call=self.on_call,
            flags=self.flags,
            sdk_wait=0.0,
        )

    def meet(self, *names: str) -> None:
        """`names` must be asked at once (see the module)."""
        rendezvous = Rendezvous(*names)
        for fake in (self.rollouts, self.chat, self.on_call, self.flags, self.cards):
            fake.rendezvous = rendezvous


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[World]:
    store = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield World(store)
    await store.close()


@contextmanager
def transactions(store: SqlStore) -> Iterator[list[list[str]]]:
    """The statements of each transaction the store begins meanwhile (one list per BEGIN)."""
    begun: list[list[str]] = []

    def begin(_conn: object) -> None:
        begun.append([])

    def execute(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if begun:
            begun[-1].append(" ".join(statement.split()))

    engine = store.engine.sync_engine
    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "before_cursor_execute", execute)
    try:
        yield begun
    finally:
        sa.event.remove(engine, "begin", begin)
        sa.event.remove(engine, "before_cursor_execute", execute)


def writing(begun: list[list[str]], table: str) -> list[list[str]]:
    """The transactions that insert into `table`."""
    return [t for t in begun if any(s.startswith(f"INSERT INTO {table}") for s in t)]


def abort() -> ActionRequest:
    return ActionRequest(SERVICE, RolloutAction.ABORT, ONCALL, revision=7, epoch=0)


# ── authorisation ─────────────────────────────────────────────────────────────────────


async def test_owners_and_on_call_are_asked_at_once(world: World) -> None:
    world.meet("members", "on_call")
    assert (await world.responder.authorise(SERVICE, "ack", ONCALL)).allowed


async def test_the_on_call_emails_are_looked_up_in_slack_at_once(world: World) -> None:
    world.meet("oncall@example.com", "second@example.com")
    assert (await world.responder.authorise(SERVICE, "ack", Actor("U0SECOND", "second"))).allowed


# ── Tier 1 ────────────────────────────────────────────────────────────────────────────


async def test_abort_authorises_while_it_reads_the_rollout_and_its_cards_epoch(
    world: World,
) -> None:
    world.meet("members", "on_call", "rollout", "epoch")
    result = await world.responder.handle(abort())
    assert result.status == "succeeded", result.message


async def test_abort_audits_in_the_transaction_that_finishes_its_claim(world: World) -> None:
    with transactions(world.store) as begun:
        result = await world.responder.handle(abort())
    assert result.status == "succeeded", result.message
    (audited,) = writing(begun, "audit_log")  # one entry, in no transaction of its own
    assert any(s.startswith("UPDATE actions SET status") for s in audited)
    assert world.rollouts.reads >= 2  # the state before, and the read-back that verifies
    (entry,) = await world.store.audit_entries()
    assert entry.entry.result == "succeeded" and entry.entry.after["aborted"] is True


# ── Tier 2 ────────────────────────────────────────────────────────────────────────────


async def test_open_circuit_authorises_while_it_reads_the_flag_and_its_epoch(
    world: World,
) -> None:
    world.meet("members", "on_call", "flag", "epoch")
    result = await world.responder.handle_flag(
        FlagRequest(SERVICE, FlagAction.CIRCUIT_OPEN, ONCALL)
    )
    assert result.status == "succeeded", result.message


async def test_the_cards_rollout_is_read_while_the_flag_is_set(world: World) -> None:
    world.meet("set", "rollout")
    result = await world.responder.handle_flag(
        FlagRequest(SERVICE, FlagAction.CIRCUIT_OPEN, ONCALL)
    )
    assert result.status == "succeeded", result.message
    assert world.rollouts.reads == 1  # read once, for the card: not again to report


async def test_a_flip_audits_settles_and_moves_its_epoch_in_one_transaction(
    world: World,
) -> None:
    with transactions(world.store) as begun:
        result = await world.responder.handle_flag(
            FlagRequest(SERVICE, FlagAction.CIRCUIT_OPEN, ONCALL)
        )
    assert result.status == "succeeded", result.message
    assert world.flags.writes == 1 and result.flag is not None and result.flag.enabled
    (audited,) = writing(begun, "audit_log")
    assert any(s.startswith("UPDATE actions SET status") for s in audited)
    assert any(s.startswith("INSERT INTO cards") and "ON CONFLICT" in s for s in audited)
    card = await world.store.get_card(f"flag:{SERVICE}:{FLAG}")
    assert card is not None and card.epoch == 1
    # The next click is a new flip at the next epoch, not a duplicate of this one.
    again = await world.responder.handle_flag(
        FlagRequest(SERVICE, FlagAction.CIRCUIT_CLOSE, ONCALL)
    )
    assert again.status == "succeeded", again.message
    card = await world.store.get_card(f"flag:{SERVICE}:{FLAG}")
    assert card is not None and card.epoch == 2


async def test_a_retried_submissions_claim_and_its_audit_are_one_transaction(
    world: World,
) -> None:
    submitted = FlagRequest(SERVICE, FlagAction.CIRCUIT_OPEN, ONCALL, submission="view-1")
    assert (await world.responder.handle_flag(submitted)).status == "succeeded"
    with transactions(world.store) as begun:
        lost = await world.responder.handle_flag(submitted)  # Slack's retry of it
    assert lost.status == "duplicate", lost.message
    (audited,) = writing(begun, "audit_log")  # the loser's entry, with its claim
    assert any(s.startswith("INSERT INTO actions") for s in audited)
    assert [e.entry.result for e in await world.store.audit_entries()] == [
        "succeeded",
        "duplicate",
    ]
    assert world.flags.writes == 1
