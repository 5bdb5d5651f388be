"""The part of the action pipeline every tier shares: authorise → idempotency → audit → report.

`Pipeline` holds what does not depend on what is acted on (a Rollout, a flag, a revert):

- the service's catalog entry (UnknownService lists the known ones);
- authorisation (bot.core.policy, with who is on call read from PagerDuty within a budget
  and the owners group from Slack, both asked at once); a refusal is audited and raised as
  NotAuthorised, saying who may act;
- the idempotency claim in the store: one request wins the key, the others are audited as
  duplicates and told who won and when (claim, winner and audit entry: one transaction);
- the audit entry (actor, action, target, state before and after, result, duration, detail),
  written alone (`audit`) or built (`entry`) for the store to write in the transaction
  that settles the claim;
- counting each request's result in /metrics, saying it in a log line, and telling the
  listeners (the PagerDuty notes) about every executed action; meanwhile every log line
  carries the service, the action, the actor and the action (idempotency) key.

The tier executors (`tier1`, `tier2`, `tier3`) are built on one `Pipeline` and do the
executing and verifying of their own kind; the shared collaborators (`chat`, `store`,
`cards`, `now`) are read from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.actions.values import (
    PAST_TENSE,
    ActionListener,
    ActionResult,
    GuardedRequest,
    Request,
    RevertRequest,
)
from bot.cards import Cards, card_key
from bot.core import policy
from bot.core.errors import NotAuthorised, RollbotError, UnknownService
from bot.core.model import Actor, AuditEntry, FlagState, Patch, RolloutState
from bot.core.ports import ActionRecord, Chat, OnCall, Store
from bot.runtime import logs
from bot.runtime.metrics import Metrics

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")


async def at_once(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Await two independent steps concurrently (say, the authorisation and the read of
    the state before). When both fail, `first`'s error is the one raised: a refusal is
    told before a read's failure, as when they ran one after the other."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


def state_summary(state: RolloutState | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {
        "revision": state.revision,
        "phase": state.phase,
        "message": state.message,
        "step": state.step_label,
        "canary_weight": state.canary_weight,
        "aborted": state.aborted,
        "paused": state.paused,
        "pause_reasons": list(state.pause_reasons),
        "stable_rs": state.stable_rs,
        "current_pod_hash": state.current_pod_hash,
        "resource_version": state.resource_version,
    }


def with_fallback(message: str, decision: policy.Decision) -> str:
    """Say so when authorisation could not ask PagerDuty and fell back to the owners group."""
    if "PagerDuty unavailable" in decision.reason:
        return f"{message} :warning: {decision.reason}."
    return message


def flag_summary(flag: FlagState | None) -> dict[str, Any]:
    if flag is None:
        return {}
    return {
        "flag": flag.key,
        "provider": flag.provider,
        "project": flag.project,
        "environment": flag.environment,
        "enabled": flag.enabled,
    }


def _facts(value: RolloutState | FlagState | None) -> dict[str, Any]:
    if isinstance(value, FlagState):
        return flag_summary(value)
    return state_summary(value)


def patch_summary(patch: Patch) -> dict[str, Any]:
    return {
        "subresource": patch.subresource,
        "content_type": patch.content_type,
        "body": patch.body,
    }


class Pipeline:
    def __init__(
        self,
        *,
        catalog: Mapping[str, ServiceSettings],
        chat: Chat,
        store: Store,
        cards: Cards,
        now: Callable[[], datetime],
        metrics: Metrics | None = None,
        on_call: OnCall | None = None,
        on_call_timeout: float = 3.0,
        listeners: Sequence[ActionListener] = (),
    ) -> None:
        # Told after every executed action (succeeded or failed): (service, action,
        # actor, result, card key or None). The PagerDuty notes hang here.
        self.listeners: tuple[ActionListener, ...] = tuple(listeners)
        self.chat = chat
        self.store = store
        self.cards = cards
        self.now = now
        self._catalog = catalog
        self._metrics = metrics
        self._on_call = on_call
        self._on_call_timeout = on_call_timeout

    def service(self, name: str) -> ServiceSettings:
        try:
            return self._catalog[name]
        except KeyError:
            raise UnknownService(name, self._catalog) from None

    # ── running one request: metrics and listeners ────────────────────────────────────

    async def counted(
        self, req: Request, action: str, run: Awaitable[ActionResult], card: str | None = None
    ) -> ActionResult:
        """Run one request's pipeline, counting its result (and how long its verification
        took) in /metrics and saying it in one log line, then tell the listeners (PagerDuty
        notes) what was done. Every log line written meanwhile carries the service, the
        action and the actor (`bot.runtime.logs`), and the action key once claimed."""
        actor = f"{req.actor.source}:{req.actor.id}"
        with logs.bound(service=req.service, action=action, actor=actor):
            return await self._counted(req, action, run, card)

    async def _counted(
        self, req: Request, action: str, run: Awaitable[ActionResult], card: str | None
    ) -> ActionResult:
        outcome = "error"
        try:
            result = await run
            outcome = result.status
            verification = result.verification
            if verification is not None and self._metrics is not None:
                verified = "true" if verification.ok else "false"
                self._metrics.action_verification.labels(action, verified).observe(
                    verification.seconds
                )
            if result.status in ("succeeded", "failed"):
                await self._tell_listeners(req, action, result, card)
            return result
        except NotAuthorised:
            outcome = "refused"
            raise
        except RollbotError:
            outcome = "failed"
            raise
        finally:
            if self._metrics is not None:
                self._metrics.actions.labels(action, outcome).inc()
            log.info("%s on %s: %s", action, req.service, outcome)

    async def _tell_listeners(
        self, req: Request, action: str, result: ActionResult, card: str | None = None
    ) -> None:
        if card is None and result.before is not None:
            card = card_key(result.before)
        for listener in self.listeners:
            try:
                await listener(req.service, action, req.actor, result, card)
            except Exception:  # boundary: a listener never undoes or hides the action
                log.exception("action listener failed after %s on %s", action, req.service)

    # ── authorise ─────────────────────────────────────────────────────────────────────

    async def guard(
        self,
        req: Request,
        cfg: ServiceSettings,
        target: str,
        *,
        offer_break_glass: bool = False,
    ) -> policy.Decision:
        """The decision for `req`; a refusal is audited on `target` and raised as
        NotAuthorised saying who may (marked `break_glass_possible` when the decision is and
        `offer_break_glass`: only Tier 2 has break-glass)."""
        decision = await self.decide(req, cfg)
        if not decision.allowed:
            await self.audit(req, target, "refused", detail={"reason": decision.reason})
            if offer_break_glass:
                raise NotAuthorised(
                    decision.reason, break_glass_possible=decision.break_glass_possible
                )
            raise NotAuthorised(decision.reason)
        return decision

    async def authorise(
        self, service: str, action: str, actor: Actor, *, target: str | None = None
    ) -> policy.Decision:
        """Tier 1's guard for an action that is not a Rollout command (`action`, one of
        `policy.TIER1_GUARDED`): the on-call or the owners group may. Ask it before doing
        anything. A refusal is audited (on `target`, else the service's Rollout) and raised
        as NotAuthorised saying whom to ask; UnknownService names the known services."""
        cfg = self.service(service)
        req = GuardedRequest(service, action, actor)
        return await self.guard(req, cfg, target or f"{cfg.namespace}/{cfg.rollout}")

    async def decide(self, req: Request, cfg: ServiceSettings) -> policy.Decision:
        """Whether `req.actor` may do `req` on the service (bot.core.policy), with the owners
        group read from Slack and who is on call from PagerDuty (or why not)."""
        group = cfg.owners.slack_usergroup if cfg.owners else None
        escalation = cfg.pagerduty.escalation_policy_id if cfg.pagerduty else None
        # Independent reads (Slack, PagerDuty then Slack): asked at once.
        members, (on_call, on_call_error) = await asyncio.gather(
            self._members(group), self._on_call_ids(escalation)
        )
        reason = getattr(req, "break_glass_reason", None) or ""
        return policy.authorise(
            actor=req.actor,
            service=req.service,
            action=policy.REVERT if isinstance(req, RevertRequest) else req.action,
            owners_usergroup=group,
            usergroup_members=members,
            escalation_policy=escalation,
            on_call=on_call,
            on_call_error=on_call_error,
            break_glass=bool(reason),
            break_glass_reason=reason,
        )

    async def _members(self, group: str | None) -> frozenset[str] | None:
        """The owners group's members, or None (no group, or Slack could not say)."""
        if not group:
            return None
        try:
            return await self.chat.usergroup_members(group)
        except RollbotError as err:
            log.warning("usergroup lookup failed: %s", err.message)
            return None

    async def _on_call_ids(
        self, escalation_policy: str | None
    ) -> tuple[frozenset[str] | None, str | None]:
        """Slack ids of who is on call for the policy, or (None, why) when unknown."""
        if not escalation_policy:
            return None, None
        if self._on_call is None:
            return None, "no PagerDuty API token configured"
        try:
            async with asyncio.timeout(self._on_call_timeout):
                emails = await self._on_call.on_call_emails(escalation_policy)
                ids = await asyncio.gather(
                    *(self.chat.user_id_by_email(email) for email in sorted(emails))
                )
        except TimeoutError:
            return None, f"no answer within {self._on_call_timeout:.0f} s"
        except RollbotError as err:
            return None, err.message
        return frozenset(i for i in ids if i), None

    # ── idempotency ───────────────────────────────────────────────────────────────────

    async def claim(
        self,
        req: Request,
        target: str,
        key: str,
        before: RolloutState | FlagState | None,
    ) -> ActionResult | None:
        """Claim the idempotency key; None when won, else the answer for the loser (who
        won, and when), audited as a duplicate. The key is the log lines' ``action_key``
        from here on."""
        logs.bind(action_key=key)
        claim = await self.store.claim_action(
            key,
            service=req.service,
            target=target,
            action=str(req.action),
            actor_id=req.actor.id,
            actor_name=req.actor.name,
            source=req.actor.source,
            # A loser's audit entry, written in the claim's own transaction.
            duplicate=lambda winner: self.entry(
                req,
                target,
                "duplicate",
                before=before,
                detail={"idempotency_key": key, "winner": winner.actor_id},
            ),
        )
        if claim.won:
            return None
        return self.duplicate(
            req, claim.record, before if isinstance(before, RolloutState) else None
        )

    def duplicate(
        self,
        req: Request,
        winner: ActionRecord,
        before: RolloutState | None,
    ) -> ActionResult:
        """The answer for a request that lost the idempotency key to `winner`."""
        when = (winner.finished_at or winner.requested_at).strftime("%H:%M:%S UTC")
        verb = PAST_TENSE.get(winner.action, winner.action)
        if winner.status == "running":
            message = (
                f"<@{winner.actor_id}> is already running {winner.action} on "
                f"`{winner.target}` (since {when}); nothing more was sent."
            )
        elif winner.status == "succeeded":
            message = (
                f"Already {verb.lower()} by <@{winner.actor_id}> at {when}; nothing more was sent."
            )
        else:
            message = (
                f"<@{winner.actor_id}>'s {winner.action} at {when} ended `{winner.status}`; "
                f"ask `/rollback {req.service}` for the current state before trying again."
            )
        return ActionResult("duplicate", message, winner, before=before)

    # ── audit ─────────────────────────────────────────────────────────────────────────

    async def audit(
        self,
        req: Request,
        target: str,
        result: str,
        *,
        before: RolloutState | FlagState | None = None,
        after: RolloutState | FlagState | None = None,
        duration_ms: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append the audit entry of `req` on `target` (`entry`) in a transaction of its own."""
        await self.store.append_audit(
            self.entry(
                req,
                target,
                result,
                before=before,
                after=after,
                duration_ms=duration_ms,
                detail=detail,
            )
        )

    def entry(
        self,
        req: Request,
        target: str,
        result: str,
        *,
        before: RolloutState | FlagState | None = None,
        after: RolloutState | FlagState | None = None,
        duration_ms: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """The audit entry of `req` on `target`, for the store to write with the claim it
        settles (`Store.finish_action(audit_entry=…)`)."""
        return AuditEntry(
            at=self.now(),
            actor=f"{req.actor.source}:{req.actor.id}:{req.actor.name}",
            action=str(req.action),
            target=target,
            result=result,
            before=_facts(before),
            after=_facts(after),
            duration_ms=duration_ms,
            detail={"service": req.service, **(detail or {})},
        )
