"""The action pipeline's one front door: authorise → idempotency → execute → verify → audit
→ report, for every tier.

Every way of asking for an action (a button, a slash command, a PagerDuty workflow, a
runbook page) builds a request (`bot.actions.values`) and calls the `Responder`:

    handle(ActionRequest)        Tier 1, a Rollout command               (tier1.RolloutCommands)
    handle_flag(FlagRequest)     Tier 2, the circuit-breaker flag        (tier2.CircuitBreaker)
    record_revert(RevertRequest) Tier 3, a revert started in Git         (tier3.Reverts)

The steps every tier shares (the catalog, authorisation, the idempotency claim, the audit
entry, metrics and the listeners told after an action) are one `pipeline.Pipeline` that
the three tier executors are built on. The `Responder` builds them from its collaborators
and delegates; it holds no logic of its own but the leader's one loop that settles the
actions a process that ended left running (`run_recovery`: Tier 1's and Tier 2's
`recover`; a Tier 3 record left running is not settled yet).

`authorise` is Tier 1's guard alone, for what changes no Rollout but must not be open to
anyone (acknowledging the page, starting a release, declaring a winner): the caller asks it
before doing anything, and a refusal is audited like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.actions.pipeline import Pipeline
from bot.actions.tier1 import RolloutCommands
from bot.actions.tier2 import CircuitBreaker
from bot.actions.tier3 import Reverts
from bot.actions.values import (
    ActionListener,
    ActionRequest,
    ActionResult,
    FlagRequest,
    RevertRequest,
    Told,
)
from bot.cards import Cards, RevertPlan
from bot.core import policy
from bot.core.flags import FlagStatus
from bot.core.model import Actor, RolloutState
from bot.core.ports import Chat, Flags, OnCall, Rollouts, Store
from bot.runtime.metrics import Metrics

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)


class Responder:
    def __init__(
        self,
        *,
        catalog: Mapping[str, ServiceSettings],
        rollouts: Rollouts,
        chat: Chat,
        store: Store,
        cards: Cards,
        verify_timeout: float = 30.0,
        poll_interval: float = 0.1,
        apply_attempts: int = 4,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
        flags: Flags | None = None,
        sdk_wait: float = 30.0,
        on_call: OnCall | None = None,
        on_call_timeout: float = 3.0,
        listeners: Sequence[ActionListener] = (),
    ) -> None:
        self._pipeline = Pipeline(
            catalog=catalog,
            chat=chat,
            store=store,
            cards=cards,
            now=now,
            metrics=metrics,
            on_call=on_call,
            on_call_timeout=on_call_timeout,
            listeners=listeners,
        )
        self._tier1 = RolloutCommands(
            self._pipeline,
            rollouts=rollouts,
            verify_timeout=verify_timeout,
            poll_interval=poll_interval,
            apply_attempts=apply_attempts,
        )
        self._tier2 = CircuitBreaker(
            self._pipeline, rollouts=rollouts, flags=flags, sdk_wait=sdk_wait
        )
        self._tier3 = Reverts(self._pipeline, rollouts=rollouts)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline every tier runs through (Tier 3 run by rollbot builds on it)."""
        return self._pipeline

    @property
    def listeners(self) -> tuple[ActionListener, ...]:
        """Told after every executed action (succeeded or failed): (service, action, actor,
        result, card key or None); given at construction. The PagerDuty notes hang here."""
        return self._pipeline.listeners

    def service(self, name: str) -> ServiceSettings:
        return self._pipeline.service(name)

    async def authorise(
        self, service: str, action: str, actor: Actor, *, target: str | None = None
    ) -> policy.Decision:
        """Tier 1's guard for an action that is not a Rollout command (`action`, one of
        `policy.TIER1_GUARDED`): the on-call or the owners group may. Ask it before doing
        anything. A refusal is audited (on `target`, else the service's Rollout) and raised
        as NotAuthorised saying whom to ask; UnknownService names the known services."""
        return await self._pipeline.authorise(service, action, actor, target=target)

    # ── Tier 1: Rollout commands ─────────────────────────────────────────────────────────

    async def status(self, service: str) -> tuple[RolloutState, int]:
        """Current state and the card epoch buttons must carry."""
        return await self._tier1.status(service)

    async def handle(self, req: ActionRequest, *, told: Told | None = None) -> ActionResult:
        """Run a Rollout command. `told`: given the result once the action is settled, while
        the card is told (`values.Told`); a result that executed nothing (a duplicate, a
        stale card) is only returned."""
        return await self._tier1.handle(req, told=told)

    # ── actions a process that ended left running: Tiers 1 and 2 ─────────────────────────

    async def recover(self, *, older_than: float) -> int:
        """Settle the Rollout commands (Tier 1) and the circuit-breaker flips (Tier 2) whose
        claims a process that ended left `running` for more than `older_than` seconds: read
        back (never sent again), audited, told on the card; how many claims were."""
        settled = await self._tier1.recover(older_than=older_than)
        return settled + await self._tier2.recover(older_than=older_than)

    async def run_recovery(self, *, older_than: float) -> None:
        """The leader's one loop for both tiers: `recover` now, then every quarter of
        `older_than` (at most every 30 s), until cancelled. One tier's failed sweep does
        not keep the other's from running."""
        while True:
            for tier in (self._tier1, self._tier2):
                try:
                    await tier.recover(older_than=older_than)
                except Exception:  # boundary: a failed sweep (the database away) is tried again
                    log.exception("settling actions left running failed")
            await asyncio.sleep(min(older_than / 4, 30.0))  # polling: claims age, no event

    # ── Tier 2: the circuit breaker ──────────────────────────────────────────────────────

    def circuit_flag(self, service: str) -> str:
        """The service's circuit-breaker flag; InvalidRequest says why there is none (not
        in the catalog, or no flag provider configured)."""
        return self._tier2.circuit_flag(service)

    def circuit_target(self, service: str) -> tuple[str, str | None]:
        """(the service's circuit-breaker flag, the provider environment it is flipped in,
        when configured); InvalidRequest as `circuit_flag`."""
        return self._tier2.circuit_target(service)

    async def flag_states(self, service: str) -> list[FlagStatus]:
        """The service's release/experiment/circuit flags: catalog metadata, live state (or
        why not) and when each should be removed."""
        return await self._tier2.flag_states(service)

    async def handle_flag(self, req: FlagRequest, *, told: Told | None = None) -> ActionResult:
        """Flip the circuit breaker; `told` as for `handle`."""
        return await self._tier2.handle_flag(req, told=told)

    async def read_circuit(self, service: str) -> None:
        """Best effort: read the service's breaker so its card shows the live state."""
        await self._tier2.read_circuit(service)

    # ── Tier 3: recording a revert in Git ────────────────────────────────────────────────

    async def revert_plan(self, service: str, *, revision: int | None = None) -> RevertPlan:
        """Tier 3's steps for the card of `revision` (as the card shows them)."""
        return await self._tier3.revert_plan(service, revision=revision)

    async def revert_already_started(self, service: str, revision: int) -> str | None:
        """Who started the Tier 3 revert already recorded for the card of `revision`, when,
        with its link (mrkdwn, for the person about to record another); None when none."""
        return await self._tier3.already_started(service, revision)

    async def authorise_revert(self, req: RevertRequest) -> policy.Decision:
        """Whether `req.actor` may record a revert of the service (Tier 1's guard); a
        refusal is audited and raised as NotAuthorised, saying who may."""
        return await self._tier3.authorise_revert(req)

    async def record_revert(
        self, req: RevertRequest, *, decision: policy.Decision | None = None
    ) -> ActionResult:
        """Record that a Tier 3 revert was started: once per card revision (a second record
        is a duplicate saying who started the first), audited, a line in the card's thread,
        the card rendered again, and the listeners told. `decision`: the authorisation
        already given for this request (else it is asked now)."""
        return await self._tier3.record_revert(req, decision=decision)
