"""Tier 2: the circuit breaker, a flag that sends all traffic down the legacy path.

`CircuitBreaker.handle_flag` runs one `FlagRequest` through the pipeline: authorise (only
the on-call, or the owners group through break-glass with a reason, which is also posted
loudly in the service's channel), claim the flip once per flag epoch (and once per modal
submission), set the flag in the provider, verify by reading it back, audit, and report
on the Rollout's card (else in the channel). After a verified flip it watches, in the
background, until the SDKs see the new value, and says so in the thread.

It also reads the breaker for the cards (`read_circuit`) and lists the service's flags
with their live state and removal notes (`flag_states`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from bot.actions.pipeline import Pipeline, with_fallback
from bot.actions.values import PAST_TENSE, ActionResult, FlagRequest
from bot.core import mrkdwn, policy
from bot.core.errors import InvalidRequest, OutcomeUnknown, RollbotError, TemporaryError
from bot.core.flags import FlagStatus, removal_note
from bot.core.model import FlagAction, FlagState, Outcome, Verification
from bot.core.ports import Flags, Rollouts

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        rollouts: Rollouts,
        flags: Flags | None = None,
        sdk_wait: float = 30.0,
    ) -> None:
        self._pipeline = pipeline
        self._rollouts = rollouts
        self._flags = flags
        self._sdk_wait = sdk_wait
        self._background: set[asyncio.Task[None]] = set()

    def circuit_flag(self, service: str) -> str:
        cfg = self._pipeline.service(service)
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
        return self.circuit_flag(service), self._pipeline.cards.circuit_environment

    async def flag_states(self, service: str) -> list[FlagStatus]:
        """The service's release/experiment/circuit flags: catalog metadata, live state (or
        why not) and when each should be removed."""
        today = self._pipeline.now().date()
        out: list[FlagStatus] = []
        for info in self._pipeline.service(service).flags.entries():
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
        return await self._pipeline.counted(req, req.action.value, self._handle_flag(req))

    async def _handle_flag(self, req: FlagRequest) -> ActionResult:
        cfg = self._pipeline.service(req.service)
        flag = self.circuit_flag(req.service)
        assert self._flags is not None
        target = f"{self._flags.provider}:{flag}"
        decision = await self._pipeline.guard(req, cfg, target, offer_break_glass=True)

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
        lost = await self._pipeline.claim(req, target, key, before)
        if lost is not None:
            return lost
        try:
            result = await self._flip(req, cfg, flag, target, decision, before, counter)
        except BaseException as err:
            reason = err.message if isinstance(err, RollbotError) else type(err).__name__
            await self._pipeline.store.finish_action(key, status="failed", result={"error": reason})
            raise
        await self._pipeline.store.finish_action(
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
        epoch = await self._pipeline.cards.epoch(counter)
        key = f"{counter}:{req.action.value}#{epoch}"
        lost = await self._pipeline.claim(req, target, key, before)
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
            await self._pipeline.audit(
                req,
                target,
                "failed",
                before=before,
                duration_ms=int((time.monotonic() - started) * 1000),
                detail={**detail, "error": reason},
            )
            await self._pipeline.store.finish_action(key, status="failed", result={"error": reason})
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
        await self._pipeline.audit(
            req,
            target,
            result,
            before=before,
            after=after,
            duration_ms=int(seconds * 1000),
            detail=detail,
        )
        record = await self._pipeline.store.finish_action(key, status=result, result=detail)
        await self._bump_flag_epoch(counter, req.service, cfg.channel)

        verb = PAST_TENSE[req.action]
        others = ", ".join(
            f"`{mrkdwn.escape(key)}`"
            for key in (cfg.flags.release, cfg.flags.experiment)
            if cfg.flags is not None and key
        )
        effect = (
            f"all traffic takes the legacy path; {others or 'the other flags'} "
            f"{'are' if others.count(',') or not others else 'is'} ignored while it is open"
            if want
            else f"traffic follows {others or 'the release and experiment flags'} again"
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
        await self._pipeline.cards.set_circuit(req.service, after)
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
            result, with_fallback(message, decision), record, verification, flag=after
        )

    async def _loud(self, cfg: ServiceSettings, text: str) -> None:
        """A top-level message in the service's channel (break-glass is never quiet)."""
        try:
            await self._pipeline.chat.post(cfg.channel, text=text)
        except RollbotError as err:
            log.warning("could not post the break-glass notice: %s", err.message)

    async def read_circuit(self, service: str) -> None:
        """Best effort: read the service's breaker so its card shows the live state."""
        cfg = self._pipeline.service(service)
        if self._flags is None or not (cfg.flags and cfg.flags.circuit):
            return
        try:
            state = await self._flags.get(cfg.flags.circuit)
        except RollbotError as err:
            log.warning("circuit state of %s unavailable: %s", service, err.message)
            return
        await self._pipeline.cards.set_circuit(service, state)

    async def _bump_flag_epoch(self, counter: str, service: str, channel: str) -> None:
        await self._pipeline.store.claim_card(counter, service=service, channel=channel)
        await self._pipeline.store.bump_card_epoch(counter)

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
                at=self._pipeline.now(),
                verified=verification.ok,
                seconds=verification.seconds,
                detail=verification.describe(),
            )
            card = await self._pipeline.cards.report(req.service, state, outcome, line)
            if card is not None and card.ts is not None:
                return card.channel, card.ts
        except RollbotError as err:
            log.warning("flip reported without the card: %s", err.message)
        try:
            ref = await self._pipeline.chat.post(cfg.channel, text=line)
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
                await self._pipeline.chat.post(ref[0], text=text, thread_ts=ref[1])

        task = asyncio.create_task(watch())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
