"""Tier 2: the circuit breaker, a flag that sends all traffic down the legacy path.

`CircuitBreaker.handle_flag` runs one `FlagRequest` through the pipeline: authorise (only
the on-call, or the owners group through break-glass with a reason, which is also posted
loudly in the service's channel), claim the flip once per flag epoch (and once per modal
submission), set the flag in the provider, verify by reading it back, audit, and report
on the Rollout's card (else in the channel). After a verified flip it watches, in the
background, until the SDKs see the new value, and says so in the thread.

What it waits on is kept to the flip itself (issue 17): the authorisation, the flag's
state before and its epoch are independent reads, asked at once; the Rollout whose card
tells the flip is read while the flag is being set, and only the card waits for it; the
audit entry, the claim's result and the flag's next epoch are written in one transaction;
and the person who asked is told (`told`) while the card and the channel are. The one
read-back is the provider adapter's, right after the write: it is the proof.

A flip is claimed under the flag's own epoch (`flip_key`: how many flips were executed on
the flag, kept in the cards table under a `flag:` key that never becomes a Slack message),
and a modal submission under itself too (`submission_key`), so a double click, two
responders or Slack's retry of one submission flip once; the epoch moves on after every
executed flip, whatever its outcome, so the next click can act.

What a process cannot do is outlive itself: killed between its claim and its report, it
leaves the claim `running`, nothing in the audit log, a card that never says who flipped
the breaker, and the flag's epoch where it was, so every later click of that action is told
"already running". The leader's `recover` settles such a claim, as Tier 1's does, once it is
older than any live flip can be (`kubernetes.action_recovery_seconds`): it reads the flag
back (never flipping it again), verifies it is in the state the action wanted, audits the
result as recovered, finishes the claim (only if still running), moves the flag's epoch on
and reports on the card: verified, or NOT verified and maybe never sent, so it can be asked
for again. When another flip of the flag was settled since (its epoch moved on), what the
flag shows is not this flip's: it is settled failed and not shown, the card already shows
the other. A modal submission's own claim is settled by the same read-back, silently: its
flip's claim is the one audited and told. A recovered flip is not watched for the SDKs (it
is minutes old), and its break-glass reason, if it had one, died with the process: the
loud notice a live break-glass flip posts is not posted.

It also reads the breaker for the cards (`read_circuit`) and lists the service's flags
with their live state and removal notes (`flag_states`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.actions.pipeline import Pipeline, at_once, with_fallback
from bot.actions.values import PAST_TENSE, ActionResult, FlagRequest, Told
from bot.core import mrkdwn, policy
from bot.core.errors import (
    InvalidRequest,
    OutcomeUnknown,
    PermanentError,
    RollbotError,
    TemporaryError,
)
from bot.core.flags import FlagStatus, removal_note
from bot.core.model import Actor, FlagAction, FlagState, Outcome, RolloutState, Verification
from bot.core.ports import ActionRecord, EpochBump, Flags, Rollouts

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)


def flag_counter(service: str, flag: str) -> str:
    """The cards-table key under which the flag's epoch is counted."""
    return f"flag:{service}:{flag}"


def flip_key(service: str, flag: str, action: FlagAction, epoch: int) -> str:
    """The idempotency key of `action` on the service's `flag` at the flag's `epoch`."""
    return f"{flag_counter(service, flag)}:{action.value}#{epoch}"


def submission_key(service: str, flag: str, action: FlagAction, submission: str) -> str:
    """The idempotency key of one modal submission (`FlagRequest.submission`) of `action`."""
    return f"{flag_counter(service, flag)}:{action.value}@{submission}"


@dataclass(frozen=True, slots=True)
class _Claim:
    """What a Tier 2 claim's key and record say: the flip asked for, on which flag, at which
    epoch (None: a modal submission's own claim, which wraps the flip's)."""

    record: ActionRecord
    action: FlagAction
    flag: str
    epoch: int | None

    @classmethod
    def of(cls, record: ActionRecord) -> _Claim | None:
        """The claim `record` is, when it is a flip's (`flip_key`, `submission_key`)."""
        try:
            action = FlagAction(record.action)
            kind, service, flag, rest = record.key.split(":", 3)
        except ValueError:
            return None
        if kind != "flag" or service != record.service:
            return None
        if rest.startswith(f"{action.value}@"):
            return cls(record, action, flag, None)
        name, _, epoch = rest.partition("#")
        if name != action.value or not epoch.isdigit():
            return None
        return cls(record, action, flag, int(epoch))

    @property
    def request(self) -> FlagRequest:
        """The request the claim was made for, as far as its record tells it."""
        r = self.record
        return FlagRequest(r.service, self.action, Actor(r.actor_id, r.actor_name, r.source))

    @property
    def want(self) -> bool:
        return self.action is FlagAction.CIRCUIT_OPEN


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

    async def handle_flag(self, req: FlagRequest, *, told: Told | None = None) -> ActionResult:
        return await self._pipeline.counted(req, req.action.value, self._handle_flag(req, told))

    async def _handle_flag(self, req: FlagRequest, told: Told | None = None) -> ActionResult:
        cfg = self._pipeline.service(req.service)
        flag = self.circuit_flag(req.service)
        assert self._flags is not None
        target = f"{self._flags.provider}:{flag}"
        # The flag's own epoch (how many flips were executed on it) keys the action, so a
        # double click or two responders racing flip once; it is kept in the cards table
        # under a `flag:` key that never becomes a Slack message.
        counter = flag_counter(req.service, flag)
        # Independent: asked at once, a refusal told first. TargetNotFound names the key.
        (decision, before), epoch = await at_once(
            at_once(
                self._pipeline.guard(req, cfg, target, offer_break_glass=True),
                self._flags.get(flag),
            ),
            self._pipeline.cards.epoch(counter),
        )
        if not req.submission:
            return await self._flip(req, cfg, flag, target, decision, before, counter, epoch, told)
        # A modal submission is also keyed on itself: Slack's retry of it arriving after the
        # flip finished (the flag's epoch bumped) is a duplicate, not a second flip.
        key = submission_key(req.service, flag, req.action, req.submission)
        lost = await self._pipeline.claim(req, target, key, before)
        if lost is not None:
            return lost
        try:
            # The epoch read again: a flip may have been settled while this claim was taken.
            epoch = await self._pipeline.cards.epoch(counter)
            result = await self._flip(
                req, cfg, flag, target, decision, before, counter, epoch, told
            )
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
        epoch: int,
        told: Told | None = None,
    ) -> ActionResult:
        key = flip_key(req.service, flag, req.action, epoch)
        lost = await self._pipeline.claim(req, target, key, before)
        if lost is not None:
            return lost
        # The Rollout whose card tells the flip is read while the flag is set; only the
        # card waits for it, not the person who asked.
        card_state = asyncio.ensure_future(self._card_state(cfg))
        try:
            return await self._flip_claimed(
                req, cfg, flag, target, decision, before, counter, key, card_state, told
            )
        finally:
            card_state.cancel()  # read by then, unless the flip ended before its report

    async def _flip_claimed(
        self,
        req: FlagRequest,
        cfg: ServiceSettings,
        flag: str,
        target: str,
        decision: policy.Decision,
        before: FlagState,
        counter: str,
        key: str,
        card_state: asyncio.Future[RolloutState | RollbotError],
        told: Told | None,
    ) -> ActionResult:
        """Set the flag (the provider reads it back), settle the claim with its audit entry
        and the flag's next epoch in one transaction, then tell the card and `told` at once."""
        assert self._flags is not None
        want = req.action is FlagAction.CIRCUIT_OPEN
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
        bump = EpochBump(counter, req.service, cfg.channel)
        try:
            after = await self._flags.set(flag, want, comment=comment)
        except BaseException as err:
            reason = err.message if isinstance(err, RollbotError) else type(err).__name__
            entry = self._pipeline.entry(
                req,
                target,
                "failed",
                before=before,
                duration_ms=int((time.monotonic() - started) * 1000),
                detail={**detail, "error": reason},
            )
            await self._pipeline.store.finish_action(
                key, status="failed", result={"error": reason}, audit_entry=entry, bump_epoch=bump
            )
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
        entry = self._pipeline.entry(
            req,
            target,
            result,
            before=before,
            after=after,
            duration_ms=int(seconds * 1000),
            detail=detail,
        )
        # Audited, settled and the flag's epoch moved on: one transaction.
        record = await self._pipeline.store.finish_action(
            key, status=result, result=detail, audit_entry=entry, bump_epoch=bump
        )

        verb = PAST_TENSE[req.action]
        effect = _effect(cfg, want)
        line = (
            f"{verb} `{flag}` ({mrkdwn.escape(after.environment)}) by <@{req.actor.id}> · "
            f"read back {'on' if after.enabled else 'off'} in {seconds:.1f} s · {effect}"
        )
        if break_glass:
            # The reason is typed by a person and posted top-level, loudly: as written,
            # never as a mention or a link.
            reason = mrkdwn.escape(req.break_glass_reason or "")
            line = f":rotating_light: BREAK-GLASS · {line} · reason: {reason}"
        message = (
            f"{verb} `{flag}` in {after.environment}: read back {'on' if want else 'off'} "
            f"in {seconds:.1f} s; {effect}."
            if ok
            else f"{req.action.value} on `{flag}` was sent but reads back "
            f"{'on' if after.enabled else 'off'}: NOT done."
        )
        done = ActionResult(
            result, with_fallback(message, decision), record, verification, flag=after
        )

        async def report() -> None:
            if break_glass:
                await self._loud(
                    cfg,
                    f"<!subteam^{cfg.owners.slack_usergroup}> {line}"
                    if cfg.owners and cfg.owners.slack_usergroup
                    else line,
                )
            await self._pipeline.cards.set_circuit(req.service, after)
            ref = await self._report_flag(req, cfg, line, verification, await card_state)
            if ok:
                self._watch_sdks(flag, want, started, cfg.channel, ref)

        if told is None:
            await report()
        else:
            # The person who asked hears while the channel and the card are told.
            await at_once(report(), told(done))
        return done

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

    # ── flips left running by a process that ended ─────────────────────────────────────

    async def recover(self, *, older_than: float) -> int:
        """Settle the circuit-breaker flips whose claims are still `running` `older_than`
        seconds after they were made (their process ended mid-flip); how many claims were
        (a modal submission's claim counts apart from its flip's). A claim whose flag cannot
        be read now (the provider unreachable) waits for the next call."""
        pipeline = self._pipeline
        cut = pipeline.now() - timedelta(seconds=older_than)
        settled = 0
        for record in await pipeline.store.running_actions(before=cut):
            claim = _Claim.of(record)
            if claim is None:
                continue  # another tier's claim (a Rollout command, a revert in Git)
            try:
                read = await self._read_back(claim)
                if claim.epoch is None:
                    settled += await self._recover_submission(claim, read)
                    continue
                result = await pipeline.counted(
                    claim.request, claim.action.value, self._recover(claim, read)
                )
            except TemporaryError as err:
                log.warning("claim %s left running: not settled yet: %s", record.key, err.message)
                continue
            if result.status != "duplicate":
                settled += 1
        return settled

    async def _read_back(self, claim: _Claim) -> FlagState | str:
        """The claim's flag as the provider has it now, or why it cannot be read any more
        (the provider changed, the flag deleted); TemporaryError: try again later."""
        if self._flags is None:
            return "no flag provider is configured any more"
        if claim.record.target != f"{self._flags.provider}:{claim.flag}":
            return f"the flag provider is now {self._flags.provider}: {claim.record.target} unread"
        try:
            return await self._flags.get(claim.flag)
        except PermanentError as err:
            return err.message

    def _asked(self, claim: _Claim) -> float:
        """Seconds from the claim to now."""
        return max(0.0, (self._pipeline.now() - claim.record.requested_at).total_seconds())

    @staticmethod
    def _why(asked: float) -> str:
        """The `recovered` note of a claim settled `asked` seconds after it was made."""
        return (
            "the process that claimed it ended before it recorded the result; "
            f"read back {asked:.1f} s after it was asked"
        )

    async def _recover_submission(self, claim: _Claim, read: FlagState | str) -> int:
        """Settle a modal submission's claim (it only makes Slack's retries of the submission
        duplicates) by the read-back: no audit entry, no report, that is its flip's claim's;
        1 when settled here."""
        ok = isinstance(read, FlagState) and read.enabled == claim.want
        asked = self._asked(claim)
        result = {"recovered": self._why(asked), "message": f"{claim.flag} read back {_on(read)}"}
        settled = await self._pipeline.store.finish_running_action(
            claim.record.key, status="succeeded" if ok else "failed", result=result
        )
        return 0 if settled is None else 1

    async def _recover(self, claim: _Claim, read: FlagState | str) -> ActionResult:
        """Verify, audit and settle one flip's claim left running; tell its card."""
        pipeline = self._pipeline
        record, flag, req = claim.record, claim.flag, claim.request
        asked = self._asked(claim)
        counter = flag_counter(record.service, flag)
        after = read if isinstance(read, FlagState) else None
        epoch = await pipeline.cards.epoch(counter)
        # Another flip of the flag was settled since this one was claimed (the other action
        # at this epoch, or anything after it): what the flag shows is not this flip's.
        moved = epoch != claim.epoch
        if moved:
            check = (
                f"no other flip of {flag} settled since (epoch {claim.epoch}, now {epoch})",
                False,
            )
        elif after is None:
            check = (f"{flag} read back: {read}", False)
        else:
            check = (f"{flag}={_on(claim.want)} read back", after.enabled == claim.want)
        verification = Verification(check[1], (check,), asked)
        result = "succeeded" if verification.ok else "failed"
        detail: dict[str, Any] = {
            "idempotency_key": record.key,
            "recovered": self._why(asked),
            "verification": {
                "ok": verification.ok,
                "seconds": round(verification.seconds, 3),
                "checks": [list(c) for c in verification.checks],
            },
        }
        if not verification.ok:
            why = (
                "another flip was settled since: the flag does not tell what this one did"
                if moved
                else "it may never have been sent"
            )
            detail["error"] = f"not verified: {verification.describe()} ({why})"
        # Audited before it is settled: a process ending between the two leaves the claim
        # running, to be read back again, never a flip missing from the audit log.
        await pipeline.audit(req, record.target, result, after=after, detail=detail)
        settled = await pipeline.store.finish_running_action(
            record.key, status=result, result=detail
        )
        if settled is None:  # its own process finished it meanwhile, and told the card
            latest = await pipeline.store.get_action(record.key)
            assert latest is not None
            return pipeline.duplicate(req, latest, None)
        message = (
            f"{PAST_TENSE[claim.action]} `{flag}`: read back {_on(claim.want)} {asked:.1f} s "
            f"after it was asked, after rollbot restarted."
            if verification.ok
            else f"{claim.action.value} on `{flag}` NOT verified: rollbot restarted before it "
            f"could check, and {mrkdwn.escape(verification.describe())}."
        )
        outcome = ActionResult(result, message, settled, verification, flag=after)
        if moved:
            return outcome  # the card shows the other flip, and the epoch has moved on
        try:
            cfg = pipeline.service(record.service)
        except PermanentError:  # the service left the catalog: no card, no channel
            return outcome
        await self._bump_flag_epoch(counter, record.service, cfg.channel)
        try:
            if after is not None:
                await pipeline.cards.set_circuit(record.service, after)
            line = _recovered_line(claim, cfg, verification, after)
            await self._report_flag(req, cfg, line, verification)
        except Exception as err:  # settled and audited: a card error must not undo that
            log.warning(
                "could not report the recovered %s on the card: %s",
                claim.action.value,
                err.message if isinstance(err, RollbotError) else repr(err),
                exc_info=not isinstance(err, RollbotError),
            )
        return outcome

    async def _bump_flag_epoch(self, counter: str, service: str, channel: str) -> None:
        await self._pipeline.store.claim_card(counter, service=service, channel=channel)
        await self._pipeline.store.bump_card_epoch(counter)

    async def _card_state(self, cfg: ServiceSettings) -> RolloutState | RollbotError:
        """The service's Rollout, whose card tells a flip, or why the cluster did not say."""
        try:
            return await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        except RollbotError as err:
            return err

    async def _report_flag(
        self,
        req: FlagRequest,
        cfg: ServiceSettings,
        line: str,
        verification: Verification,
        state: RolloutState | RollbotError | None = None,
    ) -> tuple[str, str] | None:
        """The flip on the Rollout's card (and its thread) when the cluster answers, else a
        message in the service's channel. Returns (channel, thread ts) for later lines.
        `state`: the Rollout read meanwhile (`_card_state`); None: read it now."""
        try:
            if state is None:
                state = await self._card_state(cfg)
            if isinstance(state, RollbotError):
                raise state
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


def _on(value: bool | FlagState | str) -> str:
    """`on` / `off` for a flag state (or a wanted one); what was read otherwise."""
    if isinstance(value, FlagState):
        value = value.enabled
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"unread ({value})"


def _effect(cfg: ServiceSettings, want: bool) -> str:
    """What the breaker open (`want`) or closed means for the traffic (mrkdwn)."""
    others = ", ".join(
        f"`{mrkdwn.escape(key)}`"
        for key in (cfg.flags.release, cfg.flags.experiment)
        if cfg.flags is not None and key
    )
    if want:
        return (
            f"all traffic takes the legacy path; {others or 'the other flags'} "
            f"{'are' if others.count(',') or not others else 'is'} ignored while it is open"
        )
    return f"traffic follows {others or 'the release and experiment flags'} again"


def _recovered_line(
    claim: _Claim, cfg: ServiceSettings, verification: Verification, after: FlagState | None
) -> str:
    """The thread line of a flip whose process ended before it could check (its claim left
    running), read back later (`verification.seconds`: since it was asked): the state the
    flag is in, or that the flip may never have been sent."""
    flag = mrkdwn.escape(claim.flag)
    who = f"<@{claim.record.actor_id}>"
    late = f"{verification.seconds:.1f} s after it was asked"
    if verification.ok and after is not None:
        return (
            f"{PAST_TENSE[claim.action]} `{flag}` ({mrkdwn.escape(after.environment)}) by "
            f"{who} · read back {_on(after)} {late} (rollbot restarted before it could check)"
            f" · {_effect(cfg, claim.want)}"
        )
    seen = (
        f"`{flag}` reads back {_on(after)}"
        if after is not None
        else mrkdwn.escape(verification.describe())
    )
    return (
        f"{claim.action.value.capitalize()} by {who} NOT verified: rollbot restarted before "
        f"it could check, and {late} {seen}. It may never have been sent: ask again if it is "
        f"still needed"
    )
