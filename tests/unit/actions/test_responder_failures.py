"""The responder when something breaks after the idempotency key was won.

Aspects under test:
- an error while verifying (the Rollout deleted, an unexpected exception, cancellation at
  shutdown) still writes the audit entry with the patches that were sent, finishes the
  claim and bumps the card's epoch, so the action can be asked for again instead of being
  answered "already running" forever;
- a Slack failure while reporting a verified action does not turn the success into an
  error for the person who asked.

The Rollouts and Chat ports are small in-memory fakes (they are rollbot's own Protocols,
not an SDK); the store is the real SqlStore on a SQLite file.
"""

from __future__ import annotations

import asyncio
import copy
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


def _trouble() -> RolloutState:
    """The Rollout as the watch saw it when its card was posted (inconclusive analysis)."""
    obj = copy.deepcopy(ROLLOUT)
    obj["status"]["pauseConditions"] = [{"reason": "InconclusiveAnalysisRun"}]
    state = core_rollouts.parse_rollout(obj)
    assert core_rollouts.trouble(state) is not None
    assert card_key(state) == KEY
    return state
