"""The responder when something breaks after the idempotency key was won.

Aspects under test:
- an error while verifying (the Rollout deleted, an unexpected exception, cancellation at
  shutdown) still writes the audit entry with the patches that were sent, finishes the
  claim and bumps the card's epoch, so the action can be asked for again instead of being
  answered "already running" forever;
- a Slack failure while reporting a verified action does not turn the success into an
  error for the person who asked;
- a claim left `running` by a process that was killed (issue 15) is settled by `recover`
  once older than asked: the Rollout read back shows the abort (succeeded, audited as
  recovered, the card's outcome and one thread line saying rollbot restarted) or does not
  (failed, "may never have been sent", and the abort can be asked for again); a younger
  claim, another tier's claim, and a claim whose Rollout cannot be read yet are left
  running.

The Rollouts and Chat ports are small in-memory fakes (they are rollbot's own Protocols,
not an SDK); the store is the real SqlStore on a SQLite file.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.actions import ActionRequest, Responder
from bot.cards import Cards, card_key
from bot.core import rollouts as core_rollouts
from bot.core.errors import TargetNotFound, TemporaryError
from bot.core.model import Actor, MessageRef, Patch, RolloutAction, RolloutState
from bot.settings import ServiceSettings
from bot.store import SqlStore, open_store
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(30)

SERVICE = "payment-router"
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


class FakeRollouts:
    """Applies an abort to its one object; `read_error` breaks every read after that."""

    def __init__(self) -> None:
        self.obj = copy.deepcopy(ROLLOUT)
        self.applied: list[RolloutAction] = []
        self.read_error: BaseException | None = None
        self.failed_reads = 0  # reads after the apply that raised read_error

    async def get_state(self, namespace: str, name: str) -> RolloutState:
        if self.applied and self.read_error is not None:
            self.failed_reads += 1
            raise self.read_error
        return core_rollouts.parse_rollout(self.obj)

    async def apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        patches = core_rollouts.plan(action, self.obj)
        self.applied.append(action)
        status = self.obj["status"]
        status.update(abort=True, phase="Degraded", message="RolloutAborted: aborted")
        status["canary"]["weights"]["canary"]["weight"] = 0
        return patches


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.update_error: BaseException | None = None

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
        if self.update_error is not None:
            raise self.update_error

    async def post_ephemeral(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        return frozenset({"U0ONCALL"})

    async def user_name(self, user_id: str) -> str:
        return user_id


@pytest.fixture
async def store(tmp_path):
    s = await open_store(f"sqlite:///{tmp_path / 'rollbot.db'}")
    yield s
    await s.close()


def build(store: SqlStore) -> tuple[Responder, FakeRollouts, FakeChat, Cards]:
    catalog = {
        SERVICE: ServiceSettings(
            namespace="payments",
            rollout="payment-router",
            channel="#payments-deploys",
            owners={"slack_usergroup": "S0PAYMENTS"},
        )
    }
    rollouts, chat = FakeRollouts(), FakeChat()
    cards = Cards(chat=chat, store=store, catalog=catalog)
    responder = Responder(
        catalog=catalog,
        rollouts=rollouts,  # type: ignore[arg-type]
        chat=chat,  # type: ignore[arg-type]
        store=store,
        cards=cards,
        verify_timeout=2.0,
        poll_interval=0.01,
    )
    return responder, rollouts, chat, cards


def abort(epoch: int | None = None) -> ActionRequest:
    return ActionRequest(
        service=SERVICE,
        action=RolloutAction.ABORT,
        actor=Actor("U0ONCALL", "oncall"),
        revision=7,
        epoch=epoch,
    )


KEY = "payments/payment-router@7"


async def assert_closed_and_audited(store: SqlStore) -> None:
    record = await store.get_action(f"{KEY}:abort#0")
    assert record is not None
    assert record.status == "failed", "the claim must not stay 'running' forever"
    entries = [r.entry for r in await store.audit_entries() if r.entry.action == "abort"]
    assert [e.result for e in entries] == ["failed"]
    assert entries[0].detail["patches"], "the patches that were sent must be in the audit"
    assert entries[0].detail["error"]
    card = await store.get_card(KEY)
    assert card is not None and card.epoch == 1, "the epoch must move on"


@pytest.mark.parametrize(
    "error",
    [TargetNotFound("Rollout", "payments", "payment-router"), RuntimeError("bug")],
    ids=["rollout-deleted", "unexpected"],
)
async def test_error_while_verifying_is_audited_and_releases_the_key(store, error):
    responder, rollouts, _, _ = build(store)
    rollouts.read_error = error
    with pytest.raises(type(error)):
        await responder.handle(abort(epoch=0))
    assert rollouts.applied == [RolloutAction.ABORT]
    await assert_closed_and_audited(store)

    # The same command again is not refused as "already running".
    rollouts.read_error = None
    result = await responder.handle(abort())
    assert result.status == "succeeded"


async def test_cancelled_while_verifying_is_audited(store):
    responder, rollouts, _, _ = build(store)
    rollouts.read_error = TemporaryError("slow API")  # verification keeps polling
    task = asyncio.create_task(responder.handle(abort(epoch=0)))
    # Verifying: the abort was applied and its read-back has failed at least once.
    await eventually(lambda: rollouts.failed_reads, interval=0.005, what="verification polling")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_closed_and_audited(store)


async def test_slack_failure_after_a_verified_abort_still_reports_success(store):
    responder, rollouts, chat, cards = build(store)
    await cards.observe(_trouble())  # the card exists, so reporting calls chat.update
    chat.update_error = TemporaryError("Slack rate-limited chat.update", delay=1)
    result = await responder.handle(abort(epoch=0))
    assert rollouts.applied == [RolloutAction.ABORT]
    assert result.status == "succeeded"
    assert result.verification is not None and result.verification.ok
    entries = [r.entry for r in await store.audit_entries() if r.entry.action == "abort"]
    assert [e.result for e in entries] == ["succeeded"]


async def _left_running(store: SqlStore, action: str = "abort") -> str:
    """A claim as a process killed right after winning it leaves it (no audit, no result)."""
    key = f"{KEY}:{action}#0"
    claim = await store.claim_action(
        key,
        service=SERVICE,
        target="payments/payment-router",
        action=action,
        actor_id="U0ONCALL",
        actor_name="oncall",
        source="slack",
    )
    assert claim.won
    return key


def _abort_applied(rollouts: FakeRollouts) -> None:
    """The dead process's PATCH reached the cluster, and the controller acted on it."""
    status = rollouts.obj["status"]
    status.update(abort=True, phase="Degraded", message="RolloutAborted: aborted")
    status["canary"]["weights"]["canary"]["weight"] = 0


async def test_a_claim_left_running_is_read_back_audited_and_shown(store):
    responder, rollouts, chat, cards = build(store)
    await cards.observe(_trouble())
    key = await _left_running(store)
    _abort_applied(rollouts)
    assert await responder.recover(older_than=0) == 1
    record = await store.get_action(key)
    assert record is not None and record.status == "succeeded"
    assert "ended before it recorded the result" in record.result["recovered"]
    entries = [r.entry for r in await store.audit_entries() if r.entry.action == "abort"]
    assert [e.result for e in entries] == ["succeeded"]
    assert entries[0].detail["recovered"] and entries[0].after["aborted"] is True
    card = await store.get_card(KEY)
    assert card is not None and card.epoch == 1
    assert card.outcome is not None and card.outcome.verified
    lines = [p["text"] for p in chat.posts if p["thread_ts"]]
    assert any(
        "Aborted by <@U0ONCALL>: all traffic back on" in t and "rollbot restarted" in t
        for t in lines
    ), lines
    assert rollouts.applied == []  # read back only: nothing is sent again
    assert await responder.recover(older_than=0) == 0  # settled once


async def test_a_claim_left_running_without_its_effect_is_not_verified(store):
    responder, rollouts, chat, cards = build(store)
    await cards.observe(_trouble())
    key = await _left_running(store)  # killed before its PATCH reached the cluster
    assert await responder.recover(older_than=0) == 1
    record = await store.get_action(key)
    assert record is not None and record.status == "failed"
    entries = [r.entry for r in await store.audit_entries() if r.entry.action == "abort"]
    assert [e.result for e in entries] == ["failed"]
    assert "may never have been sent" in entries[0].detail["error"]
    card = await store.get_card(KEY)
    assert card is not None and card.epoch == 1
    assert card.outcome is not None and not card.outcome.verified
    lines = [p["text"] for p in chat.posts if p["thread_ts"]]
    assert any("Abort by <@U0ONCALL> NOT verified" in t for t in lines), lines
    # The card moved on to epoch 1: the abort can be asked for again, and it runs.
    result = await responder.handle(abort(epoch=1))
    assert result.status == "succeeded" and rollouts.applied == [RolloutAction.ABORT]


async def test_young_claims_other_tiers_and_an_unreadable_rollout_wait(store):
    responder, rollouts, _, _ = build(store)
    key = await _left_running(store)
    # Tier 3's record (Tier 2's flips are settled too: tests/integration/actions).
    other = await _left_running(store, action="revert-started")
    assert await responder.recover(older_than=3600) == 0  # could still be running
    rollouts.applied.append(RolloutAction.ABORT)  # every read fails from now on
    rollouts.read_error = TemporaryError("Kubernetes API unreachable")
    assert await responder.recover(older_than=0) == 0  # read back later, not guessed
    assert [r.key for r in await store.running_actions(before=_far())] == [key, other]
    assert await store.audit_entries() == []
    rollouts.read_error = None
    _abort_applied(rollouts)
    assert await responder.recover(older_than=0) == 1
    assert [r.key for r in await store.running_actions(before=_far())] == [other]


def _far() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _trouble() -> RolloutState:
    """The Rollout as the watch saw it when its card was posted (inconclusive analysis)."""
    obj = copy.deepcopy(ROLLOUT)
    obj["status"]["pauseConditions"] = [{"reason": "InconclusiveAnalysisRun"}]
    state = core_rollouts.parse_rollout(obj)
    assert core_rollouts.trouble(state) is not None
    assert card_key(state) == KEY
    return state
