"""The action pipeline: authorise → idempotency → execute → verify → audit → report.

Every way of asking for an action (a button, a slash command, later a PagerDuty workflow or
a runbook page) builds an `ActionRequest` and calls `Responder.handle`. The pipeline:

1. resolves the service in the catalog (UnknownService lists the known ones);
2. authorises the actor (bot.core.policy; a refusal says who may act, and is audited);
3. reads the Rollout (TargetNotFound names namespace and name) and refuses a button that
   was rendered for an older revision;
4. claims an idempotency key in the store. The key is the card's revision plus the card's
   *epoch* (bumped after every executed action) plus the action, so a double click, a Slack
   retry, two users or two replicas racing on the same card all compute the same key and a
   unique constraint lets exactly one of them through; the others learn who won and when;
5. executes the patches with `kubectl argo rollouts` semantics (the adapter);
6. verifies by reading the Rollout back until the effect is observed or the deadline passes;
7. appends the audit entry (actor, action, target, state before and after, result,
   duration, the exact patches);
8. bumps the card's epoch and reports: the card shows the outcome, the thread gets a line.

Tier 3 (a full revert in Git) is done by people, not by rollbot: `record_revert` records
that someone started it (from the card's revert modal), with Tier 1's guard, once per
submission, in the audit log, the card's thread and the listeners (PagerDuty notes).

`authorise` is Tier 1's guard alone, for what changes no Rollout but must not be open to
anyone (acknowledging the page, starting a release, declaring a winner): the caller asks it
before doing anything, and a refusal is audited like any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.blocks import replies as blocks
from bot.cards import Cards, RevertPlan, card_key
from bot.core import mrkdwn, policy
from bot.core import rollouts as core_rollouts
from bot.core.errors import (
    InvalidRequest,
    NotAuthorised,
    OutcomeUnknown,
    RollbotError,
    TemporaryError,
    UnknownService,
)
from bot.core.flags import FlagStatus, removal_note
from bot.core.model import (
    Actor,
    AuditEntry,
    FlagAction,
    FlagState,
    Outcome,
    Patch,
    RolloutAction,
    RolloutState,
    Verification,
)
from bot.core.ports import ActionRecord, Chat, Flags, OnCall, Rollouts, Store
from bot.runtime.metrics import Metrics

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

PAST_TENSE: dict[str, str] = {
    FlagAction.CIRCUIT_OPEN: "Opened the circuit",
    FlagAction.CIRCUIT_CLOSE: "Closed the circuit",
    RolloutAction.ABORT: "Aborted",
    RolloutAction.RETRY: "Retried",
    RolloutAction.PROMOTE: "Promoted",
    RolloutAction.PROMOTE_FULL: "Fully promoted",
    RolloutAction.PAUSE: "Paused",
    "revert-started": "Recorded the revert",
}
# Actions whose patch can be sent twice with the same effect: safe to resend when the API
# server could not be reached. A plain promote may advance currentStepIndex, so it is not.
IDEMPOTENT = frozenset(
    {RolloutAction.ABORT, RolloutAction.RETRY, RolloutAction.PROMOTE_FULL, RolloutAction.PAUSE}
)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    service: str
    action: RolloutAction
    actor: Actor
    revision: int | None = None  # the revision the button was rendered for (None: a command)
    epoch: int | None = None  # the card epoch the button was rendered with
    retry_num: int = 0  # X-Slack-Retry-Num


@dataclass(frozen=True, slots=True)
class FlagRequest:
    """Tier 2: open or close the service's circuit-breaker flag."""

    service: str
    action: FlagAction
    actor: Actor
    break_glass_reason: str | None = None
    retry_num: int = 0
    # What makes Slack's retries of one modal submission the same (view id + hash): such a
    # request flips once per submission, even after the first has finished. "" otherwise.
    submission: str = ""


REVERT_ACTION = "revert-started"  # the audit log's action for a recorded Tier 3 revert


@dataclass(frozen=True, slots=True)
class RevertRequest:
    """Tier 3: `actor` says they started reverting the release of `service` in Git."""

    service: str
    actor: Actor
    url: str  # the revert commit or pull request (http/https)
    note: str = ""
    revision: int | None = None  # the card's revision (None: not from a card)
    epoch: int | None = None
    channel: str | None = None  # the card's message, for the thread line
    message_ts: str | None = None
    submission: str = ""  # what makes Slack's retries of one submission the same: view id+hash
    retry_num: int = 0
    action: str = REVERT_ACTION


@dataclass(frozen=True, slots=True)
class GuardedRequest:
    """An action that changes no Rollout but takes Tier 1's guard (`policy.TIER1_GUARDED`:
    acknowledging the page, starting a release, declaring a winner)."""

    service: str
    action: str  # a policy.TIER1_GUARDED verb
    actor: Actor


Request = ActionRequest | FlagRequest | RevertRequest | GuardedRequest
ActionListener = Callable[[str, str, Actor, "ActionResult", str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    status: str  # succeeded | failed | duplicate | refused
    message: str  # what to tell the person who asked (mrkdwn)
    record: ActionRecord | None = None
    verification: Verification | None = None
    before: RolloutState | None = None
    after: RolloutState | None = None
    patches: tuple[Patch, ...] = ()
    flag: FlagState | None = None


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


def _with_fallback(message: str, decision: policy.Decision) -> str:
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
        self._metrics = metrics
        # Called after every executed action (succeeded or failed): (service, action,
        # actor, result, card key or None). The PagerDuty notes hang here.
        self.listeners: tuple[ActionListener, ...] = tuple(listeners)
        self._on_call = on_call
        self._on_call_timeout = on_call_timeout
        self._flags = flags
        self._sdk_wait = sdk_wait
        self._background: set[asyncio.Task[None]] = set()
        self._catalog = catalog
        self._rollouts = rollouts
        self._chat = chat
        self._store = store
        self._cards = cards
        self._verify_timeout = verify_timeout
        self._poll = poll_interval
        self._apply_attempts = apply_attempts
        self._now = now

    def service(self, name: str) -> ServiceSettings:
        try:
            return self._catalog[name]
        except KeyError:
            raise UnknownService(name, self._catalog) from None

    async def status(self, service: str) -> tuple[RolloutState, int]:
        """Current state and the card epoch buttons must carry."""
        cfg = self.service(service)
        state = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        return state, await self._cards.epoch(card_key(state))

    async def handle(self, req: ActionRequest) -> ActionResult:
        return await self._counted(req, req.action.value, self._handle(req))

    async def _counted(
        self, req: Request, action: str, run: Awaitable[ActionResult], card: str | None = None
    ) -> ActionResult:
        """Run one request's pipeline, counting its result (and time to verified) in /metrics,
        then tell the listeners (PagerDuty notes) what was done."""
        outcome = "error"
        try:
            result = await run
            outcome = result.status
            if result.verification is not None and self._metrics is not None:
                self._metrics.action_seconds.labels(action).observe(result.verification.seconds)
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

    async def _handle(self, req: ActionRequest) -> ActionResult:
        cfg = self.service(req.service)
        target = f"{cfg.namespace}/{cfg.rollout}"

        decision = await self._authorise(req, cfg)
        if not decision.allowed:
            await self._audit(req, target, "refused", detail={"reason": decision.reason})
            raise NotAuthorised(decision.reason)

        before = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        if req.revision is not None and req.revision != before.revision:
            await self._audit(
                req,
                target,
                "refused",
                before=before,
                detail={"reason": "stale card", "card_revision": req.revision},
            )
            raise InvalidRequest(
                f"This card is for revision {req.revision}, but `{target}` is now at revision "
                f"{before.revision}. Nothing was done; ask `/rollback {req.service}` for the "
                f"current state."
            )
        current_epoch = await self._cards.epoch(card_key(before))
        epoch = req.epoch if req.epoch is not None else current_epoch
        key = f"{card_key(before)}:{req.action.value}#{epoch}"
        if epoch < current_epoch:
            # The button was rendered before someone else acted on this revision.
            earlier = await self._store.get_action(key)
            if earlier is not None:
                await self._audit(
                    req,
                    target,
                    "duplicate",
                    before=before,
                    detail={"idempotency_key": key, "winner": earlier.actor_id},
                )
                return self._duplicate(req, earlier, before)
            await self._audit(
                req,
                target,
                "refused",
                before=before,
                detail={
                    "reason": "stale card",
                    "card_epoch": epoch,
                    "current_epoch": current_epoch,
                },
            )
            raise InvalidRequest(
                f"This card is out of date: someone acted on `{target}` after it was shown, "
                f"so nothing was done. The card in the channel shows the current state "
                f"(phase {before.phase}, step {before.step_label}); press its button again "
                f"if {req.action.value} is still right."
            )
        lost = await self._claim(req, target, key, before)
        if lost is not None:
            return lost

        started = time.monotonic()
        patches: list[Patch] = []
        try:
            patches = await self._apply(req.action, cfg.namespace, cfg.rollout)
            applied_at = time.monotonic()
            verification, after = await self._verify(req.action, before, cfg)
        except BaseException as err:
            # Whatever ended it (the API refusing the patch, the Rollout deleted while we
            # read it back, a bug, cancellation at shutdown), the won claim must not stay
            # `running` forever, and patches already sent must reach the audit log.
            await self._fail(req, key, target, before, started, err, patches)
            if isinstance(err, TemporaryError):
                raise OutcomeUnknown(
                    f"{req.action.value} on `{target}` did not complete: {err.message}. "
                    f"rollbot cannot tell whether the change reached the cluster; check the "
                    f"card or `/rollback {req.service}` before trying again."
                ) from err
            raise
        result = "succeeded" if verification.ok else "failed"
        record = await self._finish(
            req,
            key,
            target,
            before,
            after,
            started,
            result,
            patches=patches,
            verification=verification,
        )
        outcome = Outcome(
            action=req.action,
            actor_id=req.actor.id,
            at=self._now(),
            verified=verification.ok,
            seconds=verification.seconds,
            detail=verification.describe(),
        )
        verb = PAST_TENSE[req.action]
        line = (
            f"{verb} by <@{req.actor.id}> · verified in {verification.seconds:.1f} s · "
            f"{verification.describe()}"
            if verification.ok
            else f"{req.action.value} by <@{req.actor.id}> NOT verified after "
            f"{time.monotonic() - applied_at:.1f} s · {verification.describe()}"
        )
        try:
            await self._cards.report(req.service, after, outcome, line)
        except Exception as err:  # the action is done and audited: its outcome must be told
            log.warning(
                "could not report %s on the card: %s",
                req.action.value,
                err.message if isinstance(err, RollbotError) else repr(err),
                exc_info=not isinstance(err, RollbotError),
            )
        message = (
            f"{verb} `{target}` (revision {before.revision}); verified in "
            f"{verification.seconds:.1f} s."
            if verification.ok
            else f"Sent {req.action.value} to `{target}` but could not verify it within "
            f"{self._verify_timeout:.0f} s: {verification.describe()}."
        )
        return ActionResult(
            result,
            _with_fallback(message, decision),
            record,
            verification,
            before,
            after,
            tuple(patches),
        )

    async def _fail(
        self,
        req: ActionRequest,
        key: str,
        target: str,
        before: RolloutState,
        started: float,
        err: BaseException,
        patches: list[Patch],
    ) -> None:
        """Audit and finish a won claim that did not reach a verdict; tell the card."""
        if isinstance(err, RollbotError):
            reason = err.message
        elif isinstance(err, asyncio.CancelledError):
            reason = "rollbot stopped before the result was verified"
        else:
            reason = f"unexpected {type(err).__name__} inside rollbot"
        if patches:
            reason += " (the patches were sent: check the Rollout's state)"
        await self._finish(
            req, key, target, before, None, started, "failed", patches=patches, error=reason
        )
        failed = Outcome(
            action=req.action,
            actor_id=req.actor.id,
            at=self._now(),
            verified=False,
            seconds=0.0,
            detail=reason,
        )
        try:
            await self._cards.report(
                req.service,
                before,
                failed,
                f"{req.action.value} by <@{req.actor.id}> FAILED: {mrkdwn.escape(reason)}",
            )
        except Exception as report_err:  # never hide the error that ended the action
            log.warning(
                "could not report the failure on the card: %s",
                report_err.message if isinstance(report_err, RollbotError) else repr(report_err),
                exc_info=not isinstance(report_err, RollbotError),
            )

    # ── Tier 3: recording a revert in Git ──────────────────────────────────────────────

    async def revert_plan(self, service: str, *, revision: int | None = None) -> RevertPlan:
        """Tier 3's steps for the card of `revision` (as the card shows them): the card's
        last known state, else the Rollout read now when it is still at that revision;
        else the steps with placeholders (the release SHA unknown)."""
        cfg = self.service(service)
        state: RolloutState | None = None
        if revision is not None:
            state = self._cards.known_state(f"{cfg.namespace}/{cfg.rollout}@{revision}")
        if state is None:
            try:
                live = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
            except RollbotError as err:
                log.warning("revert steps without the Rollout's state: %s", err.message)
            else:
                state = live if revision is None or live.revision == revision else None
        return self._cards.revert_plan(service, state)

    async def authorise_revert(self, req: RevertRequest) -> policy.Decision:
        """Whether `req.actor` may record a revert of the service (Tier 1's guard: the
        on-call or the owners group). A refusal is audited and raised as NotAuthorised,
        saying who may; an unknown service raises UnknownService naming the known ones."""
        cfg = self.service(req.service)
        decision = await self._authorise(req, cfg)
        if not decision.allowed:
            await self._audit(
                req, self._revert_target(req, cfg), "refused", detail={"reason": decision.reason}
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
        decision = await self._authorise(req, cfg)
        if not decision.allowed:
            where = target or f"{cfg.namespace}/{cfg.rollout}"
            await self._audit(req, where, "refused", detail={"reason": decision.reason})
            raise NotAuthorised(decision.reason)
        return decision

    async def record_revert(
        self, req: RevertRequest, *, decision: policy.Decision | None = None
    ) -> ActionResult:
        """Record that a Tier 3 revert was started: once per submission (`req.submission`;
        a retry is a `duplicate` naming who recorded it), audited, a line in the card's
        thread, and the listeners told (a PagerDuty note). `decision`: the authorisation
        already given for this request (else it is asked now)."""
        cfg = self.service(req.service)
        card = f"{cfg.namespace}/{cfg.rollout}@{req.revision}" if req.revision is not None else None
        return await self._counted(
            req, req.action, self._record_revert(req, cfg, decision), card=card
        )

    @staticmethod
    def _revert_target(req: RevertRequest, cfg: ServiceSettings) -> str:
        target = f"{cfg.namespace}/{cfg.rollout}"
        return f"{target}@{req.revision}" if req.revision is not None else target

    async def _record_revert(
        self, req: RevertRequest, cfg: ServiceSettings, decision: policy.Decision | None
    ) -> ActionResult:
        if not blocks.is_revert_url(req.url):
            raise InvalidRequest("Give the revert's commit or pull request URL (https://…).")
        if decision is None:
            decision = await self.authorise_revert(req)
        target = self._revert_target(req, cfg)
        key = f"revert:{target}:{req.submission or req.url}"
        lost = await self._claim(req, target, key, None)
        if lost is not None:
            return lost
        plan = await self.revert_plan(req.service, revision=req.revision)
        detail: dict[str, Any] = {
            "idempotency_key": key,
            "authorised": decision.reason,
            "url": req.url,
            "note": req.note,
            "revision": req.revision,
            "sha": plan.sha,
            "steps": list(plan.steps),
        }
        await self._audit(req, target, "succeeded", before=plan.state, detail=detail)
        record = await self._store.finish_action(key, status="succeeded", result=detail)
        line = blocks.revert_line(actor_id=req.actor.id, url=req.url, note=req.note)
        await self._revert_thread(req, cfg, line)
        message = blocks.revert_recorded_text(
            service=req.service, revision=req.revision, url=req.url, sha=plan.sha, note=req.note
        )
        return ActionResult(
            "succeeded", _with_fallback(message, decision), record, before=plan.state
        )

    async def _revert_thread(self, req: RevertRequest, cfg: ServiceSettings, line: str) -> None:
        """The revert's line under the card it was recorded from (else the card of that
        revision, else the service's channel). Best effort: the record is already kept."""
        channel, ts = req.channel, req.message_ts
        if (channel is None or ts is None) and req.revision is not None:
            found = await self._store.get_card(f"{cfg.namespace}/{cfg.rollout}@{req.revision}")
            if found is not None and found.ts is not None:
                channel, ts = found.channel, found.ts
        text = blocks.timeline_line(at=self._now(), text=line)
        try:
            await self._chat.post(channel or cfg.channel, text=text, thread_ts=ts)
        except RollbotError as err:
            log.warning("could not write the revert to the thread: %s", err.message)

    # ── Tier 2: the circuit breaker ────────────────────────────────────────────────────

    def circuit_flag(self, service: str) -> str:
        cfg = self.service(service)
        flag = cfg.flags.circuit if cfg.flags else None
        if not flag:
            raise InvalidRequest(
                f"`{service}` has no circuit-breaker flag: set `services.{service}.flags."
                f"circuit` in the catalog. Tier 1 (abort) and Tier 3 (revert) remain."
            )
        if self._flags is None:
            raise InvalidRequest(
                f"No flag provider is configured (flags.provider, flags.url, "
                f"ROLLBOT_FLAGS__API_TOKEN): flip `{flag}` in the provider's console."
            )
        return flag

    def circuit_target(self, service: str) -> tuple[str, str | None]:
        """(the service's circuit-breaker flag, the provider environment it is flipped in,
        when configured); InvalidRequest as `circuit_flag`."""
        return self.circuit_flag(service), self._cards.circuit_environment

    async def flag_states(self, service: str) -> list[FlagStatus]:
        """The service's release/experiment/circuit flags: catalog metadata, live state (or
        why not) and when each should be removed."""
        today = self._now().date()
        out: list[FlagStatus] = []
        for info in self.service(service).flags.entries():
            state: FlagState | str
            if self._flags is None:
                state = "no flag provider configured"
            else:
                try:
                    state = await self._flags.get(info.key)
                except RollbotError as err:
                    state = err.message
            out.append(FlagStatus(info, state, removal_note(info, today)))
        return out

    async def handle_flag(self, req: FlagRequest) -> ActionResult:
        return await self._counted(req, req.action.value, self._handle_flag(req))

    async def _handle_flag(self, req: FlagRequest) -> ActionResult:
        cfg = self.service(req.service)
        flag = self.circuit_flag(req.service)
        assert self._flags is not None
        target = f"{self._flags.provider}:{flag}"
        decision = await self._authorise(req, cfg)
        if not decision.allowed:
            await self._audit(req, target, "refused", detail={"reason": decision.reason})
            raise NotAuthorised(decision.reason, break_glass_possible=decision.break_glass_possible)

        before = await self._flags.get(flag)  # TargetNotFound names the key tried
        # The flag's own epoch (how many flips were executed on it) keys the action, so a
        # double click or two responders racing flip once; it is kept in the cards table
        # under a `flag:` key that never becomes a Slack message.
        counter = f"flag:{req.service}:{flag}"
        if not req.submission:
            return await self._flip(req, cfg, flag, target, decision, before, counter)
        # A modal submission is also keyed on itself: Slack's retry of it arriving after the
        # flip finished (the flag's epoch bumped) is a duplicate, not a second flip.
        key = f"{counter}:{req.action.value}@{req.submission}"
        lost = await self._claim(req, target, key, before)
        if lost is not None:
            return lost
        try:
            result = await self._flip(req, cfg, flag, target, decision, before, counter)
        except BaseException as err:
            reason = err.message if isinstance(err, RollbotError) else type(err).__name__
            await self._store.finish_action(key, status="failed", result={"error": reason})
            raise
        await self._store.finish_action(
            key, status=result.status, result={"message": result.message}
        )
        return result

    async def _flip(
        self,
        req: FlagRequest,
        cfg: ServiceSettings,
        flag: str,
        target: str,
        decision: policy.Decision,
        before: FlagState,
        counter: str,
    ) -> ActionResult:
        assert self._flags is not None
        want = req.action is FlagAction.CIRCUIT_OPEN
        epoch = await self._cards.epoch(counter)
        key = f"{counter}:{req.action.value}#{epoch}"
        lost = await self._claim(req, target, key, before)
        if lost is not None:
            return lost

        break_glass = decision.break_glass
        comment = f"rollbot: {req.action.value} by {req.actor.name} ({req.actor.id})"
        if break_glass:
            comment += f" — BREAK-GLASS: {req.break_glass_reason}"
        started = time.monotonic()
        detail: dict[str, Any] = {
            "idempotency_key": key,
            "authorised": decision.reason,
            "break_glass": req.break_glass_reason if break_glass else None,
        }
        try:
            after = await self._flags.set(flag, want, comment=comment)
        except BaseException as err:
            reason = err.message if isinstance(err, RollbotError) else type(err).__name__
            await self._audit(
                req,
                target,
                "failed",
                before=before,
                duration_ms=int((time.monotonic() - started) * 1000),
                detail={**detail, "error": reason},
            )
            await self._store.finish_action(key, status="failed", result={"error": reason})
            await self._bump_flag_epoch(counter, req.service, cfg.channel)
            if isinstance(err, TemporaryError):
                raise OutcomeUnknown(
                    f"{req.action.value} on `{flag}` did not complete: {err.message}. rollbot "
                    f"cannot tell whether the flip reached {self._flags.provider}; check "
                    f"`/rollback {req.service} flags` before trying again."
                ) from err
            raise
        seconds = time.monotonic() - started
        ok = after.enabled == want
        verification = Verification(
            ok, ((f"{flag}={'on' if want else 'off'} read back", ok),), seconds
        )
        detail["verification"] = {"ok": ok, "seconds": round(seconds, 3)}
        result = "succeeded" if ok else "failed"
        await self._audit(
            req,
            target,
            result,
            before=before,
            after=after,
            duration_ms=int(seconds * 1000),
            detail=detail,
        )
        record = await self._store.finish_action(key, status=result, result=detail)
        await self._bump_flag_epoch(counter, req.service, cfg.channel)

        verb = PAST_TENSE[req.action]
        effect = (
            "all traffic takes the legacy path; the other flags are ignored"
            if want
            else "traffic follows the release and experiment flags again"
        )
        line = (
            f"{verb} `{flag}` ({mrkdwn.escape(after.environment)}) by <@{req.actor.id}> · "
            f"read back {'on' if after.enabled else 'off'} in {seconds:.1f} s · {effect}"
        )
        if break_glass:
            # The reason is typed by a person and posted top-level, loudly: as written,
            # never as a mention or a link.
            reason = mrkdwn.escape(req.break_glass_reason or "")
            line = f":rotating_light: BREAK-GLASS · {line} · reason: {reason}"
            await self._loud(
                cfg,
                f"<!subteam^{cfg.owners.slack_usergroup}> {line}"
                if cfg.owners and cfg.owners.slack_usergroup
                else line,
            )
        await self._cards.set_circuit(req.service, after)
        ref = await self._report_flag(req, cfg, line, verification)
        if ok:
            self._watch_sdks(flag, want, started, cfg.channel, ref)
        message = (
            f"{verb} `{flag}` in {after.environment}: read back {'on' if want else 'off'} "
            f"in {seconds:.1f} s; {effect}."
            if ok
            else f"{req.action.value} on `{flag}` was sent but reads back "
            f"{'on' if after.enabled else 'off'}: NOT done."
        )
        return ActionResult(
            result, _with_fallback(message, decision), record, verification, flag=after
        )

    async def _loud(self, cfg: ServiceSettings, text: str) -> None:
        """A top-level message in the service's channel (break-glass is never quiet)."""
        try:
            await self._chat.post(cfg.channel, text=text)
        except RollbotError as err:
            log.warning("could not post the break-glass notice: %s", err.message)

    async def read_circuit(self, service: str) -> None:
        """Best effort: read the service's breaker so its card shows the live state."""
        cfg = self.service(service)
        if self._flags is None or not (cfg.flags and cfg.flags.circuit):
            return
        try:
            state = await self._flags.get(cfg.flags.circuit)
        except RollbotError as err:
            log.warning("circuit state of %s unavailable: %s", service, err.message)
            return
        await self._cards.set_circuit(service, state)

    async def _bump_flag_epoch(self, counter: str, service: str, channel: str) -> None:
        await self._store.claim_card(counter, service=service, channel=channel)
        await self._store.bump_card_epoch(counter)

    async def _report_flag(
        self, req: FlagRequest, cfg: ServiceSettings, line: str, verification: Verification
    ) -> tuple[str, str] | None:
        """The flip on the Rollout's card (and its thread) when the cluster answers, else a
        message in the service's channel. Returns (channel, thread ts) for later lines."""
        try:
            state = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
            outcome = Outcome(
                action=req.action,
                actor_id=req.actor.id,
                at=self._now(),
                verified=verification.ok,
                seconds=verification.seconds,
                detail=verification.describe(),
            )
            card = await self._cards.report(req.service, state, outcome, line)
            if card is not None and card.ts is not None:
                return card.channel, card.ts
        except RollbotError as err:
            log.warning("flip reported without the card: %s", err.message)
        try:
            ref = await self._chat.post(cfg.channel, text=line)
            return ref.channel, ref.ts
        except RollbotError as err:
            log.warning("could not report the flip in %s: %s", cfg.channel, err.message)
            return None

    def _watch_sdks(
        self,
        flag: str,
        want: bool,
        started: float,
        channel: str,
        ref: tuple[str, str] | None,
    ) -> None:
        async def watch() -> None:
            assert self._flags is not None
            deadline = started + self._sdk_wait
            seen: bool | None = None
            while time.monotonic() < deadline:
                try:
                    seen = await self._flags.sdk_sees(flag)
                except RollbotError as err:
                    log.warning("SDK view of %s unavailable: %s", flag, err.message)
                    seen = None
                if seen is None or seen == want:
                    break
                await asyncio.sleep(0.2)
            if seen is None:
                return
            elapsed = time.monotonic() - started
            text = (
                f"`{flag}` is {'on' if want else 'off'} for SDKs: effective for SDKs after "
                f"{elapsed:.1f} s"
                if seen == want
                else f"SDKs still see `{flag}` {'off' if want else 'on'} after "
                f"{self._sdk_wait:.0f} s: check the SDKs' refresh interval or streaming"
            )
            if ref is not None:
                await self._chat.post(ref[0], text=text, thread_ts=ref[1])

        task = asyncio.create_task(watch())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _claim(
        self,
        req: Request,
        target: str,
        key: str,
        before: RolloutState | FlagState | None,
    ) -> ActionResult | None:
        """Claim the idempotency key; None when won, else the answer for the loser (who
        won, and when), audited as a duplicate."""
        claim = await self._store.claim_action(
            key,
            service=req.service,
            target=target,
            action=str(req.action),
            actor_id=req.actor.id,
            actor_name=req.actor.name,
            source=req.actor.source,
        )
        if claim.won:
            return None
        await self._audit(
            req,
            target,
            "duplicate",
            before=before,
            detail={"idempotency_key": key, "winner": claim.record.actor_id},
        )
        return self._duplicate(
            req, claim.record, before if isinstance(before, RolloutState) else None
        )

    async def _authorise(self, req: Request, cfg: ServiceSettings) -> policy.Decision:
        group = cfg.owners.slack_usergroup if cfg.owners else None
        members: frozenset[str] | None = None
        if group:
            try:
                members = await self._chat.usergroup_members(group)
            except RollbotError as err:
                log.warning("usergroup lookup failed: %s", err.message)
        escalation = cfg.pagerduty.escalation_policy_id if cfg.pagerduty else None
        on_call, on_call_error = await self._on_call_ids(escalation)
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
                ids = [await self._chat.user_id_by_email(email) for email in sorted(emails)]
        except TimeoutError:
            return None, f"no answer within {self._on_call_timeout:.0f} s"
        except RollbotError as err:
            return None, err.message
        return frozenset(i for i in ids if i), None

    async def _apply(self, action: RolloutAction, namespace: str, name: str) -> list[Patch]:
        attempts = self._apply_attempts if action in IDEMPOTENT else 1
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                return await self._rollouts.apply(action, namespace, name)
            except TemporaryError as err:
                if attempt == attempts:
                    raise
                log.warning(
                    "%s on %s/%s failed (attempt %d): %s",
                    action,
                    namespace,
                    name,
                    attempt,
                    err.message,
                )
                await asyncio.sleep(err.delay or delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _verify(
        self, action: RolloutAction, before: RolloutState, cfg: ServiceSettings
    ) -> tuple[Verification, RolloutState]:
        started = time.monotonic()
        deadline = started + self._verify_timeout
        after = before
        verification = core_rollouts.verify(action, before, before)
        while True:
            try:
                after = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
                verification = core_rollouts.verify(action, before, after)
            except TemporaryError as err:
                log.warning("read-back failed: %s", err.message)
            elapsed = time.monotonic() - started
            if verification.ok or time.monotonic() >= deadline:
                return Verification(verification.ok, verification.checks, elapsed), after
            await asyncio.sleep(self._poll)

    async def _finish(
        self,
        req: ActionRequest,
        key: str,
        target: str,
        before: RolloutState,
        after: RolloutState | None,
        started: float,
        result: str,
        *,
        patches: list[Patch] | None = None,
        verification: Verification | None = None,
        error: str | None = None,
    ) -> ActionRecord:
        duration_ms = int((time.monotonic() - started) * 1000)
        detail: dict[str, Any] = {
            "idempotency_key": key,
            "patches": [patch_summary(p) for p in patches or []],
        }
        if verification is not None:
            detail["verification"] = {
                "ok": verification.ok,
                "seconds": round(verification.seconds, 3),
                "checks": [list(c) for c in verification.checks],
            }
        if error:
            detail["error"] = error
        await self._audit(
            req, target, result, before=before, after=after, duration_ms=duration_ms, detail=detail
        )
        return await self._store.finish_action(key, status=result, result=detail)

    async def _audit(
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
        await self._store.append_audit(
            AuditEntry(
                at=self._now(),
                actor=f"{req.actor.source}:{req.actor.id}:{req.actor.name}",
                action=str(req.action),
                target=target,
                result=result,
                before=_facts(before),
                after=_facts(after),
                duration_ms=duration_ms,
                detail={"service": req.service, **(detail or {})},
            )
        )

    def _duplicate(
        self,
        req: Request,
        winner: ActionRecord,
        before: RolloutState | None,
    ) -> ActionResult:
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
