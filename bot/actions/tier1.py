"""Tier 1: the Rollout commands (abort, retry, promote, promote-full, pause), end to end.

`RolloutCommands.handle` runs one `ActionRequest` through the pipeline:

1. resolves the service in the catalog and authorises the actor (the shared `Pipeline`),
   while it
2. reads the Rollout (TargetNotFound names namespace and name) and, for a button, the epoch
   of the card it names (these are independent, so they run at once, and a refusal is told
   first), and refuses a button that was rendered for an older revision;
3. claims an idempotency key in the store. The key is the card's revision plus the card's
   *epoch* (bumped after every executed action) plus the action, so a double click, a Slack
   retry, two users or two replicas racing on the same card all compute the same key and a
   unique constraint lets exactly one of them through; the others learn who won and when;
4. executes the patches with `kubectl argo rollouts` semantics (the adapter), resending
   only the patches that are safe to send twice;
5. verifies by reading the Rollout back until the effect is observed or the deadline passes
   (at once, then after `FIRST_POLL` seconds, doubling up to the poll interval: the
   controller usually takes tens of milliseconds, and a person is waiting);
6. appends the audit entry (actor, action, target, state before and after, result,
   duration, the exact patches) and finishes the claim, in one transaction;
7. bumps the card's epoch and reports: the card shows the outcome, the thread gets one line
   with the verified result in words (`bot.core.timeline.action_line`); from the won claim
   to the report the card holds the watch's lines back (`Cards.acting`), so the Rollout
   changing under the patch is not told twice. The person who asked is told (`told`, when
   given) while the card is, not after it.

Whatever ends an action after its key was won (an API error, the Rollout deleted, a bug,
cancellation at shutdown) still finishes the claim, audits the patches sent and tells the
card, so the action can be asked for again.

What a process cannot do is outlive itself: killed (`kill -9`, a lost node) between its
claim and its report, it leaves the claim `running`, nothing in the audit log, and a card
that never says who did what. The leader's `recover` settles such a claim once it is older
than any live action can be (`kubernetes.action_recovery_seconds`): it reads the Rollout
back, verifies as step 5 would (what needs the state before, which died with the process,
cannot pass), audits the result as recovered, finishes the claim (only if still running),
and reports on the card: verified, or NOT verified and maybe never sent, so it can be asked
for again. (Tier 2's `recover` does the same for circuit-breaker flips; the `Responder`'s
`run_recovery` loop asks both.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.actions.pipeline import Pipeline, at_once, patch_summary, with_fallback
from bot.actions.values import PAST_TENSE, ActionRequest, ActionResult, Told
from bot.cards import card_key
from bot.core import mrkdwn, policy, timeline
from bot.core import rollouts as core_rollouts
from bot.core.errors import (
    InvalidRequest,
    OutcomeUnknown,
    PermanentError,
    RollbotError,
    TemporaryError,
)
from bot.core.model import Actor, Outcome, Patch, RolloutAction, RolloutState, Verification
from bot.core.ports import ActionRecord, Rollouts

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

# Actions whose patch can be sent twice with the same effect: safe to resend when the API
# server could not be reached. A plain promote may advance currentStepIndex, so it is not.
IDEMPOTENT = frozenset(
    {RolloutAction.ABORT, RolloutAction.RETRY, RolloutAction.PROMOTE_FULL, RolloutAction.PAUSE}
)

# The first wait between two read-backs (seconds); it doubles up to the poll interval.
FIRST_POLL = 0.025


def claim_key(card: str, action: RolloutAction, epoch: int) -> str:
    """The idempotency key of `action` on the card `card` (a `card_key`) at `epoch`."""
    return f"{card}:{action.value}#{epoch}"


def card_of(key: str) -> str:
    """The card key a `claim_key` was made for."""
    return key.rpartition(":")[0]


class RolloutCommands:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        rollouts: Rollouts,
        verify_timeout: float = 30.0,
        poll_interval: float = 0.1,
        apply_attempts: int = 4,
    ) -> None:
        self._pipeline = pipeline
        self._rollouts = rollouts
        self._verify_timeout = verify_timeout
        self._poll = poll_interval
        self._apply_attempts = apply_attempts

    async def status(self, service: str) -> tuple[RolloutState, int]:
        """Current state and the card epoch buttons must carry."""
        cfg = self._pipeline.service(service)
        state = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        return state, await self._pipeline.cards.epoch(card_key(state))

    async def handle(self, req: ActionRequest, *, told: Told | None = None) -> ActionResult:
        return await self._pipeline.counted(req, req.action.value, self._handle(req, told))

    async def _handle(self, req: ActionRequest, told: Told | None = None) -> ActionResult:
        pipeline = self._pipeline
        cfg = pipeline.service(req.service)
        target = f"{cfg.namespace}/{cfg.rollout}"

        # The button names its card's revision: that card's epoch is read with the rest.
        expected = f"{target}@{req.revision}" if req.revision is not None else None
        decision, (before, early_epoch) = await at_once(
            pipeline.guard(req, cfg, target),
            at_once(
                self._rollouts.get_state(cfg.namespace, cfg.rollout),
                pipeline.cards.epoch(expected) if expected is not None else _nothing(),
            ),
        )
        if req.revision is not None and req.revision != before.revision:
            await pipeline.audit(
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
        current_epoch = (
            early_epoch
            if early_epoch is not None and card_key(before) == expected
            else await pipeline.cards.epoch(card_key(before))
        )
        epoch = req.epoch if req.epoch is not None else current_epoch
        key = claim_key(card_key(before), req.action, epoch)
        if epoch < current_epoch:
            # The button was rendered before someone else acted on this revision.
            earlier = await pipeline.store.get_action(key)
            if earlier is not None:
                await pipeline.audit(
                    req,
                    target,
                    "duplicate",
                    before=before,
                    detail={"idempotency_key": key, "winner": earlier.actor_id},
                )
                return pipeline.duplicate(req, earlier, before)
            await pipeline.audit(
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
        lost = await pipeline.claim(req, target, key, before)
        if lost is not None:
            return lost

        # From here to the report, the card's thread waits for this action's one line;
        # whatever ends the action without a report lets the thread go on.
        await pipeline.cards.acting(req.service, before, req.action)
        try:
            return await self._execute(req, cfg, target, key, before, decision, told)
        finally:
            await pipeline.cards.not_acting(before, req.action)

    async def _execute(
        self,
        req: ActionRequest,
        cfg: ServiceSettings,
        target: str,
        key: str,
        before: RolloutState,
        decision: policy.Decision,
        told: Told | None = None,
    ) -> ActionResult:
        """Steps 4–7 for a won claim: patch, verify, audit, report (the card, and `told`
        at the same time)."""
        pipeline = self._pipeline
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
            at=pipeline.now(),
            verified=verification.ok,
            seconds=verification.seconds,
            detail=verification.describe(),
        )
        verb = PAST_TENSE[req.action]
        line = timeline.action_line(
            req.action,
            actor_id=req.actor.id,
            verification=verification,
            before=before,
            after=after,
            waited=time.monotonic() - applied_at,
        )
        message = (
            f"{verb} `{target}` (revision {before.revision}); verified in "
            f"{verification.seconds:.1f} s."
            if verification.ok
            else f"Sent {req.action.value} to `{target}` but could not verify it within "
            f"{self._verify_timeout:.0f} s: {verification.describe()}."
        )
        done = ActionResult(
            result,
            with_fallback(message, decision),
            record,
            verification,
            before,
            after,
            tuple(patches),
        )

        async def report() -> None:
            try:
                await pipeline.cards.report(req.service, after, outcome, line)
            except Exception as err:  # done and audited: its outcome must be told
                log.warning(
                    "could not report %s on the card: %s",
                    req.action.value,
                    err.message if isinstance(err, RollbotError) else repr(err),
                    exc_info=not isinstance(err, RollbotError),
                )

        if told is None:
            await report()
        else:
            await at_once(report(), told(done))
        return done

    # ── claims left running by a process that ended ────────────────────────────────────

    async def recover(self, *, older_than: float) -> int:
        """Settle the Rollout commands whose claims are still `running` `older_than`
        seconds after they were made (their process ended mid-action); how many were.
        A claim whose Rollout cannot be read now (Kubernetes down) waits for the next call."""
        pipeline = self._pipeline
        cut = pipeline.now() - timedelta(seconds=older_than)
        settled = 0
        for record in await pipeline.store.running_actions(before=cut):
            try:
                action = RolloutAction(record.action)
            except ValueError:
                continue  # another tier's claim (a flag flip, a revert in Git)
            try:
                result = await pipeline.counted(
                    _recovered_request(record, action),
                    action.value,
                    self._recover(record, action),
                    card_of(record.key),
                )
            except TemporaryError as err:
                log.warning("claim %s left running: not settled yet: %s", record.key, err.message)
                continue
            if result.status != "duplicate":
                settled += 1
        return settled

    async def _recover(self, record: ActionRecord, action: RolloutAction) -> ActionResult:
        """Read back, audit and settle one claim left running; tell its card."""
        pipeline = self._pipeline
        req = _recovered_request(record, action)
        card = card_of(record.key)
        revision = int(card.rpartition("@")[2])
        asked = max(0.0, (pipeline.now() - record.requested_at).total_seconds())
        after: RolloutState | None = None
        try:
            cfg = pipeline.service(record.service)
            after = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        except PermanentError as err:  # the service or its Rollout is gone: nothing to verify
            verification = Verification(False, ((err.message, False),), asked)
        else:
            if after.revision == revision:
                # The state before died with the process: checks comparing with it fail.
                checks = core_rollouts.verify(action, after, after)
            else:
                moved = f"Rollout at revision {revision} (now {after.revision})"
                checks = Verification(False, ((moved, False),))
            verification = Verification(checks.ok, checks.checks, asked)
        result = "succeeded" if verification.ok else "failed"
        why = (
            "the process that claimed it ended before it recorded the result; "
            f"read back {asked:.1f} s after it was asked"
        )
        detail: dict[str, Any] = {
            "idempotency_key": record.key,
            "recovered": why,
            "verification": {
                "ok": verification.ok,
                "seconds": round(verification.seconds, 3),
                "checks": [list(c) for c in verification.checks],
            },
        }
        if not verification.ok:
            detail["error"] = (
                f"not verified: {verification.describe()} (it may never have been sent)"
            )
        # Audited before it is settled: a process ending between the two leaves the claim
        # running, to be read back again, never an effect missing from the audit log.
        await pipeline.audit(req, record.target, result, after=after, detail=detail)
        settled = await pipeline.store.finish_running_action(
            record.key, status=result, result=detail
        )
        if settled is None:  # its own process finished it meanwhile, and told the card
            latest = await pipeline.store.get_action(record.key)
            assert latest is not None
            return pipeline.duplicate(req, latest, after)
        target = record.target
        if after is not None and after.revision == revision:
            outcome = Outcome(
                action=action,
                actor_id=record.actor_id,
                at=pipeline.now(),
                verified=verification.ok,
                seconds=asked,
                detail=verification.describe(),
            )
            line = timeline.recovered_line(
                action, actor_id=record.actor_id, verification=verification, after=after
            )
            try:
                await pipeline.cards.report(record.service, after, outcome, line)
            except Exception as err:  # settled and audited: a card error must not undo that
                log.warning(
                    "could not report the recovered %s on the card: %s",
                    action.value,
                    err.message if isinstance(err, RollbotError) else repr(err),
                    exc_info=not isinstance(err, RollbotError),
                )
        message = (
            f"{PAST_TENSE[action]} `{target}` (revision {revision}); verified {asked:.1f} s "
            f"after it was asked, read back after rollbot restarted."
            if verification.ok
            else f"{action.value} on `{target}` (revision {revision}) NOT verified: rollbot "
            f"restarted before it could check, and the Rollout shows "
            f"{verification.describe()}."
        )
        return ActionResult(result, message, settled, verification, before=None, after=after)

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
            at=self._pipeline.now(),
            verified=False,
            seconds=0.0,
            detail=reason,
        )
        try:
            await self._pipeline.cards.report(
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
        wait = min(FIRST_POLL, self._poll)
        while True:
            try:
                after = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
                verification = core_rollouts.verify(action, before, after)
            except TemporaryError as err:
                log.warning("read-back failed: %s", err.message)
            elapsed = time.monotonic() - started
            if verification.ok or time.monotonic() >= deadline:
                return Verification(verification.ok, verification.checks, elapsed), after
            await asyncio.sleep(wait)
            wait = min(wait * 2, self._poll)

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
        entry = self._pipeline.entry(
            req, target, result, before=before, after=after, duration_ms=duration_ms, detail=detail
        )
        return await self._pipeline.store.finish_action(
            key, status=result, result=detail, audit_entry=entry
        )


async def _nothing() -> None:
    return None


def _recovered_request(record: ActionRecord, action: RolloutAction) -> ActionRequest:
    """The request a claim was made for, as far as its record tells it."""
    actor = Actor(record.actor_id, record.actor_name, record.source)
    return ActionRequest(record.service, action, actor)
