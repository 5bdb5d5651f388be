"""The one Slack card per Rollout revision, and its thread.

A card is the view of one incident: the Rollout's state (from the watch), the incident
built from every signal about that revision (the watch's own verdict and SLO alerts), the
canary-vs-stable evidence from Prometheus, the rollback tiers that fit, and the outcome of
the last action. Every source updates its part of the card's memory here and asks for a
render; the card is posted into the service's channel when something hurts, then updated
in place (`chat.update`), and its thread is the timeline.

Four rules keep Slack calm under an alert storm:
- a card is re-rendered only when its digest (what the card shows, not the ever-changing
  age) differs from the last one sent, and a change the card's memory holds already (an
  alert storm's resend) reads and renders nothing;
- `chat.update` for one card is sent at most once per `update_interval` seconds: a render
  asked for sooner is coalesced into one delayed flush that sends the latest state;
- Slack's own limits are kept here (`bot.cards.pace`): `chat.update` within the
  workspace's budget (a render that finds it spent waits, coalesced, for its card's turn,
  every card waiting in turn; an action's or a page's render goes at once), the card's
  post and its thread lines within their channel's (the card's post first);
- thread lines are written for state changes and actions only, never for repeats.
Coalescing drops intermediate renders, never the last: the flush renders what the card is
when its turn comes. Updates for one card are serialised by a per-card lock.

And two keep it true when Slack fails for a while (429s, 5xx, lost answers; issue 15):
- the card and its thread lines are posted once (`bot.cards.posting.post_once`): a post
  whose answer was lost is looked for in Slack before it is sent again;
- what Slack did not take within `SLACK_PATIENCE` seconds (the card's post, a
  `chat.update`, a thread line, with the lines after it) is left to the card's flush,
  which tries again after Slack's Retry-After (else a backoff up to a minute) until it
  goes, looking before it posts again: the card ends in its last state, and whoever asked
  (the incident engine, about to page) is not kept waiting on Slack meanwhile;
- a thread line waiting for Slack outlives its process: it is kept in the database
  (`card_lines`) from the moment it is queued until Slack has it, the process's own while
  it keeps trying (a lease, `line_lease`, renewed at each attempt); the leader posts the
  lines whose lease ran out (their process died, or stopped: `close` ends its leases), each
  looked for in the thread first (`post_orphan_lines`, from `run_marked`).

A Tier 3 revert recorded for a card's revision is the action record under
`revert_key(card)` (one per revision: the store's unique key is what makes a second record
a duplicate). Every render reads it from the store until one is found, so the card shows
who started the revert, with its link, after a restart or when another process recorded it.
The last action's outcome and the PagerDuty line are kept with the card's record too
(`set_card_outcome`, `set_card_pager`) and taken over by the memory of whichever process
renders it next (`_sync`), so a restart does not lose the headline "Aborted, verified".
The incident is the incident engine's, read back when a replica starts leading: the card's
memory starts from it (`restored`), and the evidence refreshed for it takes over a card
this process has not shown yet (the watch does not read an unchanged Rollout again).

And one rule keeps rollbot's own action to one line (`bot.cards.thread.ActionGate`): from
`acting` (rollbot is about to patch the Rollout) to `report`, the watch's lines are held
back, and what the action explains is left out (while rollbot's abort holds, the aborted
Rollout is no news); `explained` tells the incident engine the same.

Every replica acts (issue 15), one edits. A click, a command or a runbook page is executed
by whichever replica it reaches, and that replica reports here: it writes the outcome, the
gate and the breaker to the card's record, posts the card if it has none yet (exactly once:
`claim_card`) and the action's thread line (`post_once`), and marks the card for the leader
(`mark_card_dirty`). Only the leader (`leads()`) edits the message (`chat.update`): it takes
the marked cards every `MARKED_EVERY` seconds (`run_marked`) and renders them with what the
record says (`_sync`). One writer per message means an older render can never overwrite a
newer one, without holding a database lock across a Slack call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.blocks import card as card_blocks
from bot.blocks import replies
from bot.cards import pace, posting
from bot.cards.thread import ActionGate
from bot.core import rollouts as core_rollouts
from bot.core import tiers as core_tiers
from bot.core import timeline
from bot.core.errors import RollbotError, TemporaryError
from bot.core.gitops import RevertCase, RevertState, gitops_key
from bot.core.model import (
    Evidence,
    FlagState,
    Incident,
    IncidentState,
    MessageRef,
    Outcome,
    RevertStarted,
    RolloutAction,
    RolloutState,
    Tier,
    TierOption,
)
from bot.core.ports import ActionRecord, CardRecord, Chat, Store

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

# A card claimed but without its message may have been posted by an earlier attempt (this
# process's or another's): its first post looks this far back for it (seconds).
EARLIER_POST_LOOKBACK = 24 * 3600.0
# How long a post keeps trying (and looking) before it is left to the card's flush (s).
SLACK_PATIENCE = 10.0
# The longest wait before the flush tries again what Slack did not take, without a
# Retry-After (seconds).
RETRY_MAX = 60.0
# How often the leader takes the cards other replicas marked for rendering (seconds).
MARKED_EVERY = 0.5
# How long a thread line waiting for Slack stays the process's own without a new attempt
# (seconds): longer than a post's patience and the flush's longest wait, so a live process
# keeps its lines; once it has run out (the process died), the leader posts the line.
LINE_LEASE = 120.0


def other_flags(cfg: ServiceSettings) -> tuple[str, ...]:
    """The service's flags the circuit breaker overrides while open (release, experiment)."""
    if cfg.flags is None:
        return ()
    return tuple(e.key for e in cfg.flags.entries() if e.role != "circuit")


def card_key(state: RolloutState) -> str:
    return f"{state.namespace}/{state.name}@{state.revision}"


def revert_key(card: str) -> str:
    """The idempotency key of the Tier 3 revert recorded for the card `card` (a
    `card_key`): one revert per revision, whoever records it and however often."""
    return f"revert:{card}"


def revert_running(case: RevertCase | None) -> RevertStarted | None:
    """The card's view of a revert rollbot runs: None before the requester confirmed it
    (nothing pushed: prepared, or cancelled)."""
    if case is None or case.state in (RevertState.PREPARED, RevertState.CANCELLED):
        return None
    sign = "!" if case.provider == "gitlab" else "#"
    word = "merge request" if case.provider == "gitlab" else "pull request"
    return RevertStarted(
        actor_id=case.requester,
        url=case.change_url or "",
        at=datetime.fromisoformat(case.requested_at),
        stage=case.state.value,
        change=f"{word} {sign}{case.change_number}" if case.change_number is not None else None,
        approver_id=case.approver,
        error=case.error,
        break_glass=case.break_glass is not None,
    )


def revert_started(record: ActionRecord | None) -> RevertStarted | None:
    """The recorded revert an action record under `revert_key` says, once it has finished
    (None while it is still being recorded, or when there is none)."""
    if record is None or record.status != "succeeded":
        return None
    url = record.result.get("url")
    return RevertStarted(
        actor_id=record.actor_id,
        url=url if isinstance(url, str) else "",
        at=record.finished_at or record.requested_at,
    )


def summary_line(state: RolloutState) -> str:
    """One line saying where the Rollout is, in words; a new thread line whenever it
    changes (mrkdwn, Argo's words escaped: `bot.core.timeline.state_line`)."""
    return timeline.state_line(state)


@dataclass(frozen=True, slots=True)
class RevertPlan:
    """Tier 3 for one Rollout revision: the exact Git steps, and the release SHA if known
    (`state` None: the revision could not be read; the steps then carry placeholders)."""

    service: str
    state: RolloutState | None
    steps: tuple[str, ...]
    sha: str | None


@dataclass
class _CardMemory:
    service: str
    state: RolloutState
    outcome: Outcome | None = None
    incident: Incident | None = None
    evidence: Evidence | None = None
    alerts: tuple[str, ...] = ()
    circuit: FlagState | None = None
    pager: str | None = None  # the PagerDuty incident, as the card's notice line
    revert: RevertStarted | None = None  # the Tier 3 revert recorded, read from the store
    gate: ActionGate = field(default_factory=ActionGate)  # rollbot's own Rollout action
    last_line: str = ""
    digest: str = ""
    last_update: float = 0.0  # monotonic time of the last chat.update
    flush: asyncio.Task[None] | None = field(default=None, repr=False)
    failures: int = 0  # Slack failures in a row (the flush's backoff)
    owes_post: bool = False  # this process claimed the card and its post failed
    wants_update: bool = False  # a render waits for its turn in Slack's budget (`pace`)
    posted: bool = False  # this process knows the card's message (its ts)
    # Thread lines not posted yet, oldest first.
    lines: list[_Line] = field(default_factory=list)


@dataclass(slots=True)
class _Line:
    """A thread line waiting for Slack: its post key, its text, when it was first tried
    (None: not yet), and whether it is kept in the store (`card_lines`) until it is in."""

    key: str
    text: str
    tried: float | None = None
    kept: bool = False


class Cards:
    def __init__(
        self,
        *,
        chat: Chat,
        store: Store,
        catalog: Mapping[str, ServiceSettings],
        public_url: str | None = None,
        circuit_available: bool = False,
        circuit_environment: str | None = None,
        update_interval: float = 1.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        leads: Callable[[], bool] = lambda: True,
        read_state: Callable[[str], Awaitable[RolloutState]] | None = None,
        slack_pace: pace.SlackPace | None = None,
        owner: str = "rollbot",
        line_lease: float = LINE_LEASE,
    ) -> None:
        self._chat = chat
        # Who this process is, for the thread lines it keeps in the store until Slack has
        # them (`card_lines`), and how long each stays its own without a new attempt.
        self._owner = owner
        self._line_lease = line_lease
        # Slack's rate limits kept here (None: not paced, as in tests of other things).
        self._pace = slack_pace
        # Whether this replica edits the cards' messages (the leader), or leaves that to it.
        self._leads = leads
        # The service's Rollout read now: how a leader takes over a card it has not shown
        # (`_take_over`); None: such a card waits for the watch's next event.
        self._read_state = read_state
        self._store = store
        self._catalog = catalog
        self._public_url = public_url.rstrip("/") if public_url else None
        self._interval = update_interval
        self._circuit_available = circuit_available
        self._circuit_environment = circuit_environment
        self._circuit: dict[str, FlagState] = {}  # service → its breaker's last known state
        self._now = now
        self._locks: dict[str, asyncio.Lock] = {}
        self._memory: dict[str, _CardMemory] = {}
        # Incidents a previous leader left (`restored`), by card key: where this process
        # first builds the card's memory, it starts from them.
        self._restored: dict[str, tuple[Incident, tuple[str, ...]]] = {}
        self._by_target = {(s.namespace, s.rollout): name for name, s in catalog.items()}
        self._closing = False

    def service_for(self, namespace: str, name: str) -> str | None:
        return self._by_target.get((namespace, name))

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _mem(self, service: str, state: RolloutState) -> _CardMemory:
        mem = self._memory.get(card_key(state))
        if mem is None:
            mem = self._new_mem(service, state)
        else:
            mem.state = state
        return mem

    def _new_mem(self, service: str, state: RolloutState) -> _CardMemory:
        """The card's memory, first built in this process: with the incident a previous
        leader left, if any (`restored`)."""
        key = card_key(state)
        mem = self._memory[key] = _CardMemory(service, state)
        restored = self._restored.pop(key, None)
        if restored is not None:
            mem.incident, mem.alerts = restored
        return mem

    def restored(self, incident: Incident, *, alerts: Sequence[str] = ()) -> None:
        """An incident read back from the database when this process started leading
        (`IncidentEngine.restore`), with its alert lines: its card's memory starts from it,
        so the first render here (the evidence refreshed, the Rollout moving on) still
        shows the incident. Never renders: nothing changed."""
        key = incident.card_key
        mem = self._memory.get(key)
        if mem is None:
            self._restored[key] = (incident, tuple(alerts))
        elif mem.incident is None or incident.changed_at >= mem.incident.changed_at:
            mem.incident, mem.alerts = incident, tuple(alerts)

    async def epoch(self, key: str) -> int:
        card = await self._store.get_card(key)
        return card.epoch if card else 0

    # ── what changes a card ─────────────────────────────────────────────────────────────

    async def observe(self, state: RolloutState) -> CardRecord | None:
        """A Rollout changed: post its card if it hurts, update the card if it exists."""
        service = self.service_for(state.namespace, state.name)
        if service is None:
            return None
        key = card_key(state)
        async with self._lock(key):
            mem = self._mem(service, state)
            card = await self._store.get_card(key)
            if card is None and not self._hurts(mem):
                return None
            kept = self._sync(mem, card)
            if card is not None:
                mem.gate.adopt(card.gate)  # another replica's action, in flight or verified
            line = self._watch_line(mem, state)
            if card is not None and mem.gate.to_json() != kept:
                # The watch saw the end of what the action explained: so does the record.
                await self._store.set_card_gate(key, mem.gate.to_json())
            return await self._show(mem, card, line=line)

    async def acting(self, service: str, state: RolloutState, action: RolloutAction) -> None:
        """rollbot is about to patch the Rollout (`state`: as read just before): until the
        action's `report`, the watch's lines about this card are held back (here), and the
        card's record says so (for the leader's watch, when this is a standby)."""
        key = card_key(state)
        mem = self._memory.get(key)
        if mem is None:
            mem = self._new_mem(service, state)
        mem.gate.start(action, state)
        await self._keep_gate(key, mem)

    async def not_acting(self, state: RolloutState, action: RolloutAction) -> None:
        """The `acting(…, state, action)` ended (its `report` has settled it already, unless
        an error ended it first): the watch's lines are no longer held back for it."""
        key = card_key(state)
        mem = self._memory.get(key)
        if mem is not None and mem.gate.acting == (action, state):
            mem.gate.end(action, state)
            await self._keep_gate(key, mem)

    async def _keep_gate(self, key: str, mem: _CardMemory) -> None:
        """Write the card's gate to its record; no card yet: nothing to keep it with."""
        with contextlib.suppress(LookupError):  # the store's RecordNotFound
            await self._store.set_card_gate(key, mem.gate.to_json())

    def explained(self, state: RolloutState) -> bool:
        """Whether rollbot's own action on this card (in flight, or verified and still
        holding) explains `state`: a line about it would repeat the action's line."""
        mem = self._memory.get(card_key(state))
        return mem is not None and mem.gate.explains(state)

    @staticmethod
    def _watch_line(mem: _CardMemory, state: RolloutState) -> str | None:
        """The watch's line for `state`, or None: held while rollbot's action is in flight,
        left out while its verified action explains it (then it is not news either)."""
        line = summary_line(state)
        if mem.gate.hold(line, state):
            return None
        if not mem.gate.passes(state):
            mem.last_line = line
            return None
        return line

    async def incident_changed(
        self,
        service: str,
        state: RolloutState,
        incident: Incident,
        *,
        alerts: Sequence[str] = (),
        line: str | None = None,
    ) -> CardRecord | None:
        """The incident of this revision changed (an alert fired or resolved, a tick).

        An incident older than the one the card shows (its state changed before) is a
        change that waited for the card's lock while a newer one went first (a slow Slack):
        the card keeps the newer; its `line`, if any, is still written."""
        key = card_key(state)
        async with self._lock(key):
            known = self._memory.get(key)
            if line is None and known is not None and self._shows(known, state, incident, alerts):
                return None  # a repeat (an alert storm's resend): no read, no render
            mem = self._mem(service, state)
            if mem.incident is None or incident.changed_at >= mem.incident.changed_at:
                mem.incident = incident
                mem.alerts = tuple(alerts)
            card = await self._store.get_card(key)
            if card is None and not self._hurts(mem):
                return None
            return await self._show(mem, card, line=line, always=line is not None)

    @staticmethod
    def _shows(
        mem: _CardMemory, state: RolloutState, incident: Incident, alerts: Sequence[str]
    ) -> bool:
        """Whether the card's memory holds exactly this, posted by this process and owing
        Slack nothing: Slack shows it, or its flush is on the way to."""
        return (
            mem.posted
            and not mem.owes_post
            and not mem.lines
            and mem.incident == incident
            and mem.alerts == tuple(alerts)
            and mem.state == state
        )

    async def set_evidence(self, service: str, state: RolloutState, evidence: Evidence) -> None:
        """Prometheus answered: fill in the evidence on an existing card (never posts).

        A card this process has not shown yet (it took over from a leader that did: the
        watch resumes from its stored cursor, so an unchanged Rollout is not read again)
        is taken over here, from its record and the incident restored."""
        key = card_key(state)
        async with self._lock(key):
            mem = self._memory.get(key)
            card = await self._store.get_card(key)
            if mem is None:
                if card is None or card.ts is None:
                    return
                mem = self._new_mem(service, state)
                mem.gate.adopt(card.gate)
            mem.evidence = evidence
            if card is not None and card.ts is not None:
                await self._render_update(mem, card)

    @property
    def circuit_environment(self) -> str | None:
        """The flag provider's environment the circuit breakers are flipped in (None: the
        provider's default, not configured here)."""
        return self._circuit_environment

    def circuit_known(self, service: str) -> bool:
        return service in self._circuit

    async def set_circuit(self, service: str, circuit: FlagState) -> None:
        """The breaker's state changed or was read: show it on the service's open cards."""
        if self._circuit.get(service) == circuit:
            return
        self._circuit[service] = circuit
        # Kept with the service's cards: the leader shows what a standby's flip read back.
        await self._store.set_service_circuit(service, circuit, mark_dirty=not self._leads())
        if not self._leads():
            return
        for key, mem in list(self._memory.items()):
            if mem.service != service:
                continue
            async with self._lock(key):
                card = await self._store.get_card(key)
                if card is not None and card.ts is not None:
                    await self._render_update(mem, card)

    async def report(
        self, service: str, state: RolloutState, outcome: Outcome, line: str
    ) -> CardRecord | None:
        """An action finished (or failed): new epoch, outcome on the card, a thread line."""
        key = card_key(state)
        async with self._lock(key):
            mem = self._mem(service, state)
            self._sync(mem, await self._store.get_card(key))
            mem.outcome = outcome
            held = mem.gate.settle(outcome.action, verified=outcome.verified, after=state)
            card = await self._ensure_posted(mem, await self._store.get_card(key))
            if card is None:
                await self._store.bump_card_epoch(key)
                return None
            # Kept with the card, in one statement: the leader renders it, and a replica
            # that takes over shows the same headline and keeps quiet about what the
            # action explains. Rendered from the record as written.
            card = await self._store.record_card_action(
                key, outcome=outcome, gate=mem.gate.to_json(), mark_dirty=not self._leads()
            )
            await self._refresh(mem, card, line=line, always=True, immediate=True)
            if held is not None:
                await self._refresh(mem, card, line=held)
            return card

    async def pager_changed(self, key: str, text: str, *, line: str | None) -> bool:
        """The card's PagerDuty incident changed (triggered, acknowledged, escalated,
        resolved): show `text` on the card and add `line` to its thread (both mrkdwn, with
        PagerDuty's words escaped by the caller). False when this process has no card for
        `key`."""
        mem = self._memory.get(key)
        if mem is None:
            # Not shown by this process (it took over from the leader that did): kept with
            # the card, and shown when the Rollout is still at the card's revision.
            card = await self._store.get_card(key)
            if card is None:
                return False
            await self._store.set_card_pager(key, text)
            mem = await self._take_over(key, card)
            if mem is None:
                return False
        async with self._lock(key):
            card = await self._store.get_card(key)
            if card is None:
                return False
            await self._store.set_card_pager(key, text)
            card = replace(card, pager=text)
            self._sync(mem, card)
            if card.ts is None:
                return False
            await self._refresh(mem, card, line=line, always=True, immediate=True)
        return True

    async def render_marked(self) -> int:
        """Render the cards other replicas marked (the leader's part of their actions);
        how many. A card this process has not shown is taken over (`_take_over`) when its
        Rollout is still at the card's revision; an older revision's card is left alone."""
        rendered = 0
        # Not cut short by a cancel (the leader stopping): a write transaction cancelled
        # half-way keeps SQLite's write lock until its connection is collected, and the
        # leases released at shutdown would wait out the busy timeout behind it.
        taking = asyncio.ensure_future(self._store.take_dirty_cards())
        try:
            keys = await asyncio.shield(taking)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await taking
            raise
        for key in keys:
            mem = self._memory.get(key)
            if mem is None:
                mem = await self._take_over(key, await self._store.get_card(key))
                if mem is None:
                    continue
            async with self._lock(key):
                card = await self._store.get_card(key)
                if card is None or card.ts is None:
                    continue
                await self._render_update(mem, card)
                rendered += 1
        return rendered

    async def _take_over(self, key: str, card: CardRecord | None) -> _CardMemory | None:
        """The memory of a card with a message that this process has not shown (it took
        over from the leader that did: the watch resumes from its cursor, so an unchanged
        Rollout is not read again): built from the Rollout read now, its record and the
        incident restored. None when the Rollout cannot be read, or has moved on from the
        card's revision (that card is history, not updated)."""
        if self._read_state is None or card is None or card.ts is None:
            return None
        try:
            state = await self._read_state(card.service)
        except RollbotError as err:
            log.warning("could not read %s to take over its card: %s", key, err.message)
            return None
        if card_key(state) != key:
            return None
        mem = self._memory.get(key) or self._new_mem(card.service, state)
        mem.gate.adopt(card.gate)
        return mem

    async def run_marked(self, every: float = MARKED_EVERY) -> None:
        """The leader's loop over `render_marked`, every `every` seconds, until cancelled."""
        while True:
            try:
                await self.render_marked()
            except Exception:
                log.warning("rendering the marked cards failed; again shortly", exc_info=True)
            try:
                await self.post_orphan_lines()
            except Exception:
                log.warning("posting the lines left by others failed; again", exc_info=True)
            await asyncio.sleep(every)

    def settled(self) -> bool:
        """Whether nothing is under way: no card being changed (every card's lock free), no
        update waiting to be coalesced or sent again."""
        return not any(lock.locked() for lock in self._locks.values()) and all(
            (mem.flush is None or mem.flush.done()) and not mem.lines and not mem.owes_post
            for mem in self._memory.values()
        )

    async def close(self) -> None:
        """Send the pending coalesced updates now (shutdown): once, no retry after. The
        thread lines Slack still has not taken are left to the leader at once (their
        leases end now), not after their lease."""
        self._closing = True
        for mem in list(self._memory.values()):
            if mem.flush is not None and not mem.flush.done():
                mem.flush.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await mem.flush
                await self._flush_now(mem)
        if any(line.kept for mem in self._memory.values() for line in mem.lines):
            try:
                await self._store.release_card_lines(self._owner)
            except Exception as err:  # noqa: BLE001 - they are taken after their lease
                log.warning("could not leave the waiting thread lines to the leader: %s", err)

    # ── rendering ───────────────────────────────────────────────────────────────────────

    def _sync(self, mem: _CardMemory, card: CardRecord | None) -> dict[str, Any] | None:
        """Take what the card's record says over this memory: every writer writes the
        record before it renders, so the record is the newer (another replica's outcome,
        and breaker; the PagerDuty line; a previous process's). The gate is taken where the
        watch's lines are weighed (`observe`). Returns the gate as the record had it."""
        if card is None:
            return None
        if card.outcome is not None and (mem.outcome is None or card.outcome.at >= mem.outcome.at):
            mem.outcome = card.outcome  # the latest action's, whoever took it
        mem.pager = card.pager or mem.pager
        if card.circuit is not None:
            # Written by whoever read the breaker last (this process writes it too).
            self._circuit[mem.service] = card.circuit
        mem.circuit = self._circuit.get(mem.service)
        return dict(card.gate) if card.gate is not None else None

    @staticmethod
    def _hurts(mem: _CardMemory) -> bool:
        if core_rollouts.trouble(mem.state) is not None:
            return True
        return mem.incident is not None and mem.incident.state is not IncidentState.RESOLVED

    def runbook_url(self, service: str) -> str | None:
        cfg = self._catalog[service]
        if self._public_url:
            return f"{self._public_url}/runbooks/{service}"
        return cfg.runbook

    def tiers(self, mem: _CardMemory) -> list[Any]:
        circuit_open = mem.circuit is not None and mem.circuit.enabled
        return self.tier_options(
            mem.service, mem.state, incident=mem.incident, circuit_open=circuit_open
        )

    def tier_options(
        self,
        service: str,
        state: RolloutState | None,
        *,
        incident: Incident | None = None,
        circuit_open: bool = False,
    ) -> list[TierOption]:
        """The three tiers for `service` at `state`, from its catalog entry (the card's);
        `circuit_open`: its breaker's live state."""
        cfg = self._catalog[service]
        return core_tiers.tier_options(
            service=service,
            state=state,
            incident=incident,
            circuit_flag=cfg.flags.circuit if cfg.flags else None,
            circuit_available=self._circuit_available and bool(cfg.flags and cfg.flags.circuit),
            gitops_repo=cfg.gitops.repo,
            gitops_path=cfg.gitops.path,
            sha_annotation=cfg.gitops.sha_annotation,
            runbook_url=self.runbook_url(service),
            circuit_open=circuit_open,
        )

    def known_state(self, key: str) -> RolloutState | None:
        """The Rollout state this process last showed on the card `key`, if any."""
        mem = self._memory.get(key)
        return mem.state if mem is not None else None

    def revert_plan(self, service: str, state: RolloutState | None) -> RevertPlan:
        """Tier 3 as the card shows it: the exact steps and the release SHA when known."""
        revert = next(o for o in self.tier_options(service, state) if o.tier is Tier.FULL_REVERT)
        sha = core_tiers.release_sha(state, self._catalog[service].gitops.sha_annotation)
        return RevertPlan(service=service, state=state, steps=revert.steps, sha=sha)

    async def revert_started(
        self,
        service: str,
        *,
        actor_id: str,
        url: str,
        note: str = "",
        revision: int | None = None,
        channel: str | None = None,
        message_ts: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """A Tier 3 revert was recorded: its line in the thread of the card it was recorded
        from (`channel`, `message_ts`), else of the card of `revision`, else top-level in the
        service's channel; stamped `at` (default: now). The card of `revision`, when this
        process shows it, is rendered again at once (who started the revert, with its link;
        no "Record Tier 3 revert…"). Best effort: a Slack failure is logged, never raised
        (the record is already kept)."""
        cfg = self._catalog[service]
        if (channel is None or message_ts is None) and revision is not None:
            found = await self._store.get_card(f"{cfg.namespace}/{cfg.rollout}@{revision}")
            if found is not None and found.ts is not None:
                channel, message_ts = found.channel, found.ts
        line = replies.revert_line(actor_id=actor_id, url=url, note=note)
        text = replies.timeline_line(at=at or self._now(), text=line)
        try:
            await self._chat.post(channel or cfg.channel, text=text, thread_ts=message_ts)
        except RollbotError as err:
            log.warning("could not write the revert to the thread: %s", err.message)
        if revision is not None:
            await self._show_revert(f"{cfg.namespace}/{cfg.rollout}@{revision}")

    async def _show_revert(self, key: str) -> None:
        """Render the card `key` again now (its revert is read from the store)."""
        if not self._leads():
            # Not edited by this process: the leader renders it, reading the revert.
            with contextlib.suppress(LookupError):  # no card: nothing to render
                await self._store.mark_card_dirty(key)
            return
        mem = self._memory.get(key)
        if mem is None:
            # Not shown by this process yet (a leader that took over, a card not rendered
            # since the start): the marked cards' loop takes it over and renders it.
            with contextlib.suppress(LookupError):
                await self._store.mark_card_dirty(key)
            return
        async with self._lock(key):
            card = await self._store.get_card(key)
            if card is None or card.ts is None:
                return
            try:
                await self._render_update(mem, card)
            except RollbotError as err:
                log.warning("could not show the revert on the card %s: %s", key, err.message)

    async def _read_revert(self, mem: _CardMemory) -> None:
        """The card's Tier 3 revert, from the store: the one rollbot runs (read again at
        every render until it is verified), else one recorded by hand (read until one is
        found: a recorded revert is never taken back). A revert rollbot stopped leaves
        the card to a revert recorded by hand, once there is one."""
        if mem.revert is not None and mem.revert.stage in (None, RevertState.VERIFIED.value):
            return
        key = card_key(mem.state)
        case = await self._store.get_revert(gitops_key(key))
        running = revert_running(case)
        if running is None or running.stage == RevertState.FAILED.value:
            recorded = revert_started(await self._store.get_action(revert_key(key)))
            running = recorded or running
        mem.revert = running

    async def revert_progress(self, service: str, key: str) -> None:
        """The revert rollbot runs for the card `key` moved on: render the card again now
        (or, on a standby, mark it for the leader). Best effort, as `revert_started`."""
        mem = self._memory.get(key)
        if mem is not None and mem.revert is not None and mem.revert.stage is not None:
            mem.revert = None  # read again at the render
        await self._show_revert(key)

    @staticmethod
    def revert_already_text(*, service: str, revision: int | None, winner: ActionRecord) -> str:
        """What a second record of a revert is told: who started the first (`winner`, its
        action record), when, and its link (none while it is still being recorded)."""
        started = revert_started(winner)
        return replies.revert_already_text(
            service=service,
            revision=revision,
            actor_id=winner.actor_id,
            at=started.at if started is not None else winner.requested_at,
            url=started.url if started is not None else None,
        )

    @staticmethod
    def revert_recorded_text(
        *, service: str, revision: int | None, url: str, sha: str | None, note: str = ""
    ) -> str:
        """What the person who recorded a Tier 3 revert is told (and the PagerDuty note
        says); the URL and the note are the user's text, escaped."""
        return replies.revert_recorded_text(
            service=service, revision=revision, url=url, sha=sha, note=note
        )

    def render(self, mem: _CardMemory, *, epoch: int) -> tuple[str, list[dict[str, Any]]]:
        cfg = self._catalog[mem.service]
        kw: dict[str, Any] = {
            "service": mem.service,
            "state": mem.state,
            "trouble": core_rollouts.trouble(mem.state),
            "epoch": epoch,
            "now": self._now(),
            "outcome": mem.outcome,
            "incident": mem.incident,
            "evidence": mem.evidence,
            "tiers": self.tiers(mem),
            "alerts": mem.alerts,
            "circuit_flag": cfg.flags.circuit if cfg.flags else None,
            "other_flags": other_flags(cfg),
            "circuit": mem.circuit,
            "circuit_environment": self._circuit_environment,
            "notice": mem.pager,
            "revert": mem.revert,
            "tier3_executable": cfg.gitops.executable,
        }
        return card_blocks.rollout_card_text(**kw), card_blocks.rollout_card(**kw)

    async def _show(
        self, mem: _CardMemory, card: CardRecord | None, *, line: str | None, always: bool = False
    ) -> CardRecord | None:
        try:
            card = await self._ensure_posted(mem, card)
        except TemporaryError:
            await self._queue_line(mem, line, always=always)  # for the flush, after the card
            raise
        if card is None:
            return None
        await self._refresh(mem, card, line=line, always=always)
        return card

    async def _ensure_posted(self, mem: _CardMemory, card: CardRecord | None) -> CardRecord | None:
        """The card's record with a message ts, posting it if we own it and it has none.

        None means another poster claimed it and has not posted yet (it owns the first
        post). A claim whose poster died stays without a message; see the README's known
        limits (leader election and claim takeover come with several replicas).
        """
        key = card_key(mem.state)
        cfg = self._catalog[mem.service]
        earlier: float | None = None
        if card is None:
            won, card = await self._store.claim_card(key, service=mem.service, channel=cfg.channel)
            if not won and card.ts is None:
                return None
        elif card.ts is None:
            # Claimed before, never recorded: that first post may have gone through.
            earlier = time.time() - EARLIER_POST_LOOKBACK
        self._sync(mem, card)
        if card.ts is not None:
            mem.posted = True
            return card
        await self._read_revert(mem)
        text, body = self.render(mem, epoch=card.epoch)
        try:
            ref = await posting.post_once(
                self._poster(mem, pace.CARD),
                cfg.channel,
                key=key,
                text=text,
                blocks=body,
                earlier=earlier,
                give_up_after=SLACK_PATIENCE,
            )
        except TemporaryError as err:
            mem.owes_post = True  # the flush posts it (looking first)
            self._again_later(mem, err)
            raise
        mem.owes_post = False
        mem.posted = True
        # A message an earlier attempt posted may show an older state: the next render
        # updates it.
        mem.digest = _digest(mem, card.epoch) if earlier is None else ""
        mem.last_update = time.monotonic()
        return await self._store.set_card_message(
            key, ts=ref.ts, digest=mem.digest, channel=ref.channel
        )

    async def _refresh(
        self,
        mem: _CardMemory,
        card: CardRecord,
        *,
        line: str | None,
        always: bool = False,
        immediate: bool = False,
    ) -> None:
        if immediate:
            await self._render_update(mem, card, turn="now")
        elif time.monotonic() - mem.last_update >= self._interval:
            await self._render_update(mem, card)
        else:
            mem.wants_update = True
            self._flush_soon(mem)
        await self._queue_line(mem, line, always=always)
        await self._send_lines(mem, card)

    async def _queue_line(self, mem: _CardMemory, line: str | None, *, always: bool) -> None:
        """`line` for the thread, stamped now, after those still waiting (unless it
        repeats the last line and `always` is False); kept in the store until Slack has
        it, so that it outlives this process (without the store, in memory only)."""
        if line is None or (not always and line == mem.last_line):
            return
        if not always:
            mem.last_line = line
        key = card_key(mem.state)
        waiting = _Line(posting.line_key(key), replies.timeline_line(at=self._now(), text=line))
        mem.lines.append(waiting)
        try:
            await self._store.add_card_line(
                waiting.key,
                card_key=key,
                text=waiting.text,
                owner=self._owner,
                lease=self._line_lease,
            )
        except Exception as err:  # noqa: BLE001 - the line still goes from memory
            log.warning("thread line of %s kept in memory only: %s", key, err)
        else:
            waiting.kept = True

    async def _send_lines(self, mem: _CardMemory, card: CardRecord) -> None:
        """Post the thread lines waiting, oldest first. One Slack does not take waits, with
        those after it, for the card's flush; a line tried before is looked for first, and
        stays this process's own (its lease renewed) unless the leader took it over."""
        assert card.ts is not None
        while mem.lines:
            waiting = mem.lines[0]
            if waiting.tried is None:
                earlier, waiting.tried = None, time.time()
            else:
                earlier = waiting.tried
                if waiting.kept and not await self._still_mine(waiting.key):
                    mem.lines.pop(0)  # taken over (this process was thought gone): not ours
                    continue
            try:
                await posting.post_once(
                    self._poster(mem, pace.LINE),
                    card.channel,
                    key=waiting.key,
                    text=waiting.text,
                    thread_ts=card.ts,
                    earlier=earlier,
                    give_up_after=SLACK_PATIENCE,
                )
            except TemporaryError as err:
                self._again_later(mem, err)
                return
            mem.lines.pop(0)
            mem.failures = 0
            if waiting.kept:
                await self._forget_line(waiting.key)

    async def _still_mine(self, key: str) -> bool:
        """Renew this process's lease on a waiting line; False when the leader took it
        over. The database unreachable: still ours (nobody can take it meanwhile either)."""
        try:
            return await self._store.renew_card_line(key, owner=self._owner, lease=self._line_lease)
        except Exception as err:  # noqa: BLE001 - see above
            log.warning("lease of line %s not renewed: %s", key, err)
            return True

    async def _forget_line(self, key: str) -> None:
        """Slack has the line: its row goes (best effort: a row left behind is taken over
        by the leader, which finds the line in Slack and posts nothing)."""
        try:
            await self._store.drop_card_line(key)
        except Exception as err:  # noqa: BLE001 - see above
            log.warning("posted line %s not forgotten: %s", key, err)

    async def post_orphan_lines(self) -> int:
        """The leader's part: post the thread lines whose process is gone (their lease ran
        out), oldest first, each looked for in the thread before it is posted (it may have
        gone in before its process died); how many are in Slack now. A line whose card has
        no message yet, or that Slack does not take now, waits for the lease again."""
        posted = 0
        mine = {waiting.key for mem in self._memory.values() for waiting in mem.lines}
        for line in await self._store.take_card_lines(owner=self._owner, lease=self._line_lease):
            if line.key in mine:
                continue  # this process's own, still being tried by its card
            card = await self._store.get_card(line.card_key)
            if card is None or card.ts is None:
                continue
            cfg = self._catalog.get(card.service)
            bucket = self._pace.posts(cfg.channel) if self._pace and cfg is not None else None
            async with self._lock(line.card_key):
                try:
                    await posting.post_once(
                        pace.PacedPoster(self._chat, bucket, pace.LINE),
                        card.channel,
                        key=line.key,
                        text=line.text,
                        thread_ts=card.ts,
                        earlier=line.created_at.timestamp(),
                        give_up_after=SLACK_PATIENCE,
                    )
                except TemporaryError as err:
                    log.warning("line %s left for later: %s", line.key, err.message)
                    continue
                except RollbotError as err:
                    log.warning("line %s refused by Slack, dropped: %s", line.key, err.message)
                else:
                    posted += 1
            await self._forget_line(line.key)
        return posted

    def _poster(self, mem: _CardMemory, priority: int) -> pace.PacedPoster:
        """The card's posts, each waiting for its turn in its channel (`priority`: the
        card's own post before thread lines)."""
        channel = self._catalog[mem.service].channel
        bucket = self._pace.posts(channel) if self._pace is not None else None
        return pace.PacedPoster(self._chat, bucket, priority)

    async def _render_update(
        self, mem: _CardMemory, card: CardRecord, *, turn: str = "paced"
    ) -> None:
        """Send the card's current state, unless Slack shows it already. `turn`: "paced"
        (now if Slack's budget has room, else the card's flush sends its latest state in
        its turn), "now" (an action's or a page's change, which a person waits for: never
        held), "granted" (the flush's turn, taken already)."""
        if not self._leads():
            # One writer per message: the leader renders it, with what the record says.
            self._unused(turn)
            await self._store.mark_card_dirty(card.card_key)
            return
        if self._pace is not None and turn == "paced":
            if not self._pace.updates.try_take():
                # Coalesced: the flush renders what the card is then, in its turn.
                mem.wants_update = True
                self._flush_soon(mem)
                return
            turn = "granted"
        self._sync(mem, card)
        await self._read_revert(mem)
        digest = _digest(mem, card.epoch)
        if digest == card.digest or digest == mem.digest:
            self._unused(turn)
            return
        if self._pace is not None and turn == "now":
            self._pace.updates.take_now()
        mem.wants_update = False
        text, body = self.render(mem, epoch=card.epoch)
        assert card.ts is not None
        try:
            await self._chat.update(MessageRef(card.channel, card.ts), text=text, blocks=body)
        except TemporaryError as err:
            mem.wants_update = True
            self._again_later(mem, err)
            return
        mem.digest = digest
        mem.last_update = time.monotonic()
        mem.failures = 0
        await self._store.set_card_digest(card.card_key, digest)

    def _again_later(self, mem: _CardMemory, err: TemporaryError) -> None:
        """Slack did not take the card's post, update or line: its flush tries again after
        Slack's Retry-After, else after a backoff (1, 2, 4 … s, at most RETRY_MAX)."""
        mem.failures += 1
        delay = err.delay
        if delay is None:
            delay = min(RETRY_MAX, 2.0 ** (mem.failures - 1))
        log.warning(
            "Slack did not take the card %s: %s (again in %.1f s)",
            card_key(mem.state),
            err.message,
            delay,
        )
        if self._closing:
            return
        if mem.flush is None or mem.flush.done() or mem.flush is asyncio.current_task():
            mem.flush = asyncio.create_task(self._flush_later(mem, delay=delay))

    def _unused(self, turn: str) -> None:
        """A turn granted and not used: the next card waiting has it."""
        if turn == "granted" and self._pace is not None:
            self._pace.updates.give_back()

    def _flush_soon(self, mem: _CardMemory) -> None:
        """The card's flush, unless one is under way (it sends the latest state)."""
        if self._closing:
            return
        if mem.flush is None or mem.flush.done() or mem.flush is asyncio.current_task():
            mem.flush = asyncio.create_task(self._flush_later(mem))

    async def _flush_later(self, mem: _CardMemory, *, delay: float | None = None) -> None:
        if delay is None:
            delay = mem.last_update + self._interval - time.monotonic()
        await asyncio.sleep(max(0.0, delay))
        turn = "paced"
        if self._pace is not None and mem.wants_update:
            await self._pace.updates.take()  # every card waiting gets its turn, in order
            turn = "granted"
        await self._flush_now(mem, turn=turn)

    async def _flush_now(self, mem: _CardMemory, *, turn: str = "now") -> None:
        """Make Slack show the card as it is now: post it if this process owes its post
        (looking for an earlier attempt's first), update it, post the lines waiting."""
        key = card_key(mem.state)
        async with self._lock(key):
            card = await self._store.get_card(key)
            if card is None or (card.ts is None and not mem.owes_post):
                self._unused(turn)
                return
            try:
                if card.ts is None:
                    posted = await self._ensure_posted(mem, card)
                    if posted is None:
                        self._unused(turn)
                        return
                    card = posted
                await self._render_update(mem, card, turn=turn)
                await self._send_lines(mem, card)
            except RollbotError as err:
                log.warning("coalesced update of %s failed: %s", key, err.message)


def _digest(mem: _CardMemory, epoch: int) -> str:
    state, outcome, incident, evidence = mem.state, mem.outcome, mem.incident, mem.evidence
    material = {
        "rev": state.revision,
        "phase": state.phase,
        "msg": state.message,
        "step": state.step_index,
        "weight": state.canary_weight,
        "aborted": state.aborted,
        "paused": [state.paused, state.controller_pause, list(state.pause_reasons)],
        "analysis": None
        if state.analysis is None
        else [state.analysis.status, state.analysis.message],
        "stable": [state.stable_rs, state.stable_revision, state.stable_image],
        "canary_image": state.canary_image,
        "outcome": None
        if outcome is None
        else [str(outcome.action), outcome.actor_id, outcome.at.isoformat(), outcome.verified],
        "incident": None
        if incident is None
        else [str(incident.state), sorted(incident.firing), len(incident.seen)],
        "alerts": list(mem.alerts),
        "circuit": None if mem.circuit is None else [mem.circuit.key, mem.circuit.enabled],
        "evidence": None if evidence is None else repr(replace(evidence, queried_at=None)),
        "pager": mem.pager,
        "revert": None
        if mem.revert is None
        else [
            mem.revert.actor_id,
            mem.revert.url,
            mem.revert.at.isoformat(),
            mem.revert.stage,
            mem.revert.approver_id,
            mem.revert.error,
        ],
        "epoch": epoch,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
