"""The incident engine: every signal about a service's revision becomes one incident card.

Signals come from two places: the Rollout watch (the Rollout's own verdict: an inconclusive
pause, a progress deadline, a degraded canary) and Alertmanager (SLO alerts). Both are
correlated by `bot.core.incidents` into one incident per service and Rollout revision, so
an analysis failure seen by the watch and an SLO alert for the same canary are one card.

For each change the engine:
- updates the card (`bot.cards.Cards`): posted when the incident opens, updated in place,
  a thread line only when the incident's state changes (alert storms stay quiet), and
  none when the Rollout stopped firing because rollbot aborted it (the abort's own line
  said so: `Cards.explained`);
- asks Prometheus for canary-vs-stable evidence in the background (best effort: the card
  never waits for it; "metrics unavailable" until it answers), refreshed while open;
- resolves incidents that stayed quiet for `incidents.quiet_period_seconds` (a ticker);
- tells the fallback channel, at most once per alert name per interval, about alerts that
  match no service in the catalog (they are counted in /metrics either way).

Incidents are durable (issue 15): every change is written to the database (`save_incidents`,
with the summaries of the alerts firing) before it is shown or paged, the writes grouped
(`bot.incidents.writer`: the changes made while a write is under way go together in the
next, so an alert storm is a few transactions, not one per webhook); `restore` reads them
back when a replica starts leading, so after a restart or a failover the card goes on
updating in place, Alertmanager's resolve finds its incident, PagerDuty gets its one resolve
and the evidence goes on refreshing (the ticker fetches it for every open incident, and the
card's memory starts from the restored incident: `Cards.restored`). The inputs are durable
too: alert webhooks are stored before they are acknowledged and replayed after a crash. The
Rollout state of a restored incident is read again (the watch's next event about it, or a
read of the Rollout when the ticker needs it: the watch resumes from its stored cursor and
does not read an unchanged Rollout again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.cards import Cards, card_key
from bot.core import alerts as core_alerts
from bot.core import incidents as core_incidents
from bot.core import mrkdwn
from bot.core import rollouts as core_rollouts
from bot.core.errors import RollbotError
from bot.core.model import Alert, Incident, IncidentState, RolloutState
from bot.core.ports import Chat, EvidenceSource, IncidentRecord, Rollouts
from bot.incidents.book import IncidentBook
from bot.incidents.writer import IncidentWriter
from bot.runtime.inbox import retry_later

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

IncidentListener = Callable[[str, RolloutState, Incident], Awaitable[None]]

MAX_ALERT_LINES = 50  # distinct firing summaries for the card (it shows 3, "+N more")
# How far back `restore` reads resolved incidents: a resolved incident is kept so that a
# signal for the same revision within it reopens that incident instead of a new one.
RESTORE_RESOLVED = timedelta(days=1)
# How long a read of a service's Rollout answers for the alerts that follow (seconds): the
# watch's events replace it meanwhile (`_remember`), so it is only ever older than the
# Rollout when the watch lags. The read is of the watch's cache (`cached_state`: no
# request; an API read only where the watch does not hold the Rollout); under an alert
# storm, one per service per interval instead of one per webhook.
STATE_FRESH = 2.0


class IncidentStore(Protocol):
    """What the engine keeps in the database (bot.store.SqlStore)."""

    async def save_incident(self, incident: Incident, alerts: Mapping[str, str]) -> None: ...

    async def save_incidents(self, rows: Sequence[tuple[Incident, Mapping[str, str]]]) -> None: ...

    async def load_incidents(self, *, since: datetime) -> list[IncidentRecord]: ...


class IncidentEngine:
    def __init__(
        self,
        *,
        settings: Settings,
        rollouts: Rollouts,
        cards: Cards,
        chat: Chat,
        prometheus: EvidenceSource | None = None,
        book: IncidentBook | None = None,
        store: IncidentStore | None = None,
        listeners: Sequence[IncidentListener] = (),
        evidence_interval: float = 15.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._catalog = settings.services
        self._router = core_alerts.AlertRouter(settings.alert_matchers())
        self._rollouts = rollouts
        self._cards = cards
        self._chat = chat
        self._prometheus = prometheus
        self._evidence_interval = evidence_interval
        self._now = now
        self._quiet = timedelta(seconds=settings.incidents.quiet_period_seconds)
        self._throttle = core_alerts.NoticeThrottle(
            timedelta(seconds=settings.alertmanager.unknown_notice_interval_seconds)
        )
        self.book = book or IncidentBook()
        self._store = store
        self.incidents: dict[str, Incident] = self.book.by_key
        # Incidents are written by rounds (group commit): see bot.incidents.writer.
        self._writer = IncidentWriter(store=store, snapshot=self._row) if store else None
        self._states: dict[str, RolloutState] = {}  # last known state per service
        self._read_at: dict[str, float] = {}  # service → loop time of its last read
        self._card_states: dict[str, RolloutState] = {}  # last known state per card key
        self._alert_text: dict[str, dict[str, str]] = {}  # card key → fingerprint → summary
        self._evidence_due: dict[str, float] = {}  # card key → loop time of next refresh
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        # Told of every shown incident change: (service, state, incident). PagerDuty's
        # trigger and resolve hang here.
        self._listeners = tuple(listeners)

    # ── signals ─────────────────────────────────────────────────────────────────────────

    async def on_rollout(self, state: RolloutState) -> None:
        """The watch saw the Rollout change (called once per coalesced refresh)."""
        service = self._cards.service_for(state.namespace, state.name)
        if service is None:
            return
        self._remember(service, state)
        trouble = core_rollouts.trouble(state)
        signal = core_incidents.rollout_signal(service, state, trouble, self._now())
        key = card_key(state)
        async with self._lock:
            previous = self.incidents.get(key)
            if previous is None and not signal.firing:
                incident, change = None, None
            else:
                incident, change = core_incidents.open_or_update(
                    previous,
                    signal,
                    namespace=state.namespace,
                    rollout=state.name,
                    revision=state.revision,
                    now=self._now(),
                )
                if incident != previous:
                    await self._save(key, incident, previous)
                else:
                    self.incidents[key] = incident
        # The incident's change is committed above, so it is shown (and paged) even when
        # the card could not be posted: the next refresh sees no change and would never
        # show it (a Slack 500 on the card lost the page). The card's error is raised after.
        card_error: Exception | None = None
        try:
            await self._cards.observe(state)
        except Exception as err:  # noqa: BLE001 - re-raised below, once the incident is shown
            card_error = err
        if incident is not None and (change is not None or previous is None):
            await self._show(service, state, incident, change)
        if card_error is not None:
            raise card_error

    async def on_alerts(self, alerts: list[Alert], payload: dict[str, Any]) -> None:
        """One Alertmanager webhook's alerts (already stored and acknowledged)."""
        by_service, unknown = self._router.route(alerts)
        if unknown:
            await self._notice_unknown(unknown)
        for service, service_alerts in by_service.items():
            try:
                state = await self._state(service)
            except RollbotError as err:
                log.warning("alerts for %s: Rollout unreadable: %s", service, err.message)
                await self._notice(
                    service,
                    f":warning: {len(service_alerts)} SLO alert(s) for `{service}`, but its "
                    f"Rollout could not be read: {mrkdwn.escape(err.message)}",
                )
                continue
            await self._apply_alerts(service, state, service_alerts)

    async def _apply_alerts(self, service: str, state: RolloutState, alerts: list[Alert]) -> None:
        key = card_key(state)
        now = self._now()
        lines: list[str] = []
        async with self._lock:
            incident = before = self.incidents.get(key)
            texts = self._alert_text.setdefault(key, {})
            changed = False
            starts = dict(incident.alert_starts) if incident is not None else {}
            for alert in alerts:
                signal = core_alerts.alert_signal(service, alert, now=now)
                if core_incidents.is_repeat(incident, signal, starts):
                    texts[alert.fingerprint] = signal.summary  # a storm's resend
                    continue
                updated, change = core_incidents.open_or_update(
                    incident,
                    signal,
                    namespace=state.namespace,
                    rollout=state.name,
                    revision=state.revision,
                    now=now,
                )
                if alert.firing:
                    texts[alert.fingerprint] = signal.summary
                else:
                    texts.pop(alert.fingerprint, None)
                if change is not None:
                    changed = True
                    if change.state_changed:
                        lines.append(change.text)
                if updated is not incident:
                    starts = dict(updated.alert_starts)
                incident = updated
            if incident is None:
                return
            if changed:
                self.incidents[key] = incident
        if changed:
            # Outside the lock: the changes of the webhooks that arrive meanwhile are
            # written with this one, in one round (a storm is a few writes, not thousands).
            await self._write(key, incident, before)
        elif self._writer is not None and self._writer.pending(key):
            # Another delivery's change to it is being written: shown once it is.
            await self._writer.save(key)
        if not changed:
            # Nothing new, but what the change owed may not have been done: the first
            # delivery of these alerts changed the incident and then met a Slack failure (a
            # 429), or the process died after saving it, before the page was queued; its
            # replay lands here. Showing it again posts the card, or changes nothing; the
            # listeners are told again (PagerDuty's queue takes each page once).
            await self._cards.incident_changed(
                service, state, incident, alerts=self._alert_lines(key, incident)
            )
            await self._tell(service, state, incident, from_delivery=True)
            return
        await self._show(service, state, incident, None, lines=lines, from_delivery=True)

    async def _show(
        self,
        service: str,
        state: RolloutState,
        incident: Incident,
        change: core_incidents.Change | None,
        *,
        lines: list[str] | None = None,
        from_delivery: bool = False,
    ) -> None:
        key = card_key(state)
        if lines is None:
            said = change is not None and self._said_by_action(change, state)
            lines = (
                [change.text] if change is not None and change.state_changed and not said else []
            )
        alerts = self._alert_lines(key, incident)
        # One thread line per state change; the card itself is updated (coalesced) once.
        # A change's text is plain and quotes the alert's summary or Argo's message: escaped.
        line = " · ".join(mrkdwn.escape(text) for text in lines) if lines else None
        # Slack failing must not stop the page either: the listeners run whatever the card
        # did, and the card's error is raised after them.
        card_error: Exception | None = None
        try:
            await self._cards.incident_changed(service, state, incident, alerts=alerts, line=line)
        except Exception as err:  # noqa: BLE001 - re-raised below, after the listeners
            card_error = err
        if incident.state is IncidentState.OPEN:
            self._fetch_evidence(service, state, key)
        await self._tell(service, state, incident, from_delivery=from_delivery)
        if card_error is not None:
            raise card_error

    async def _tell(
        self, service: str, state: RolloutState, incident: Incident, *, from_delivery: bool
    ) -> None:
        """The listeners (PagerDuty): each is idempotent for an incident it was told. For a
        stored delivery (`from_delivery`: an Alertmanager webhook), a temporary failure
        (PagerDuty's queue out of reach) is raised once all were told, so the delivery
        stays pending and its replay tells them again. Any other failure, and any on the
        watch's or the ticker's path (which have no replay), is logged: paging never stops
        the card."""
        again: Exception | None = None
        for listener in self._listeners:
            try:
                await listener(service, state, incident)
            except Exception as err:  # boundary
                if from_delivery and retry_later(err):
                    log.warning("incident listener for %s: %r; again", incident.card_key, err)
                    again = again or err
                else:
                    log.exception("incident listener failed for %s", incident.card_key)
        if again is not None:
            raise again

    def _alert_lines(self, key: str, incident: Incident) -> list[str]:
        """The firing alerts' summaries for the card, identical ones counted (`… ×3`)."""
        counts = Counter(
            t for fp, t in self._alert_text.get(key, {}).items() if fp in incident.firing
        )
        return [
            f"{text} ×{n:,}" if n > 1 else text for text, n in counts.most_common(MAX_ALERT_LINES)
        ]

    def _said_by_action(self, change: core_incidents.Change, state: RolloutState) -> bool:
        """The incident recovers because the Rollout stopped firing, and it stopped because
        of rollbot's own action (an abort): that action's thread line said it."""
        return (
            change.kind is core_incidents.ChangeKind.RECOVERING
            and change.key == core_incidents.ROLLOUT_KEY
            and self._cards.explained(state)
        )

    # ── evidence ────────────────────────────────────────────────────────────────────────

    def _fetch_evidence(
        self, service: str, state: RolloutState, key: str, *, force: bool = False
    ) -> None:
        if self._prometheus is None:
            return
        loop = asyncio.get_running_loop()
        if not force and loop.time() < self._evidence_due.get(key, 0.0):
            return
        self._evidence_due[key] = loop.time() + self._evidence_interval
        task = asyncio.create_task(self._evidence(service, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evidence(self, service: str, state: RolloutState) -> None:
        assert self._prometheus is not None
        cfg = self._catalog[service]
        # Only the templates the catalog overrides: the adapter reads None as "switched off".
        templates = {
            name: template
            for name, template in (
                ("error_rate", cfg.metrics.error_rate),
                ("latency_p95_ms", cfg.metrics.latency_p95_ms),
                ("latency_p99_ms", cfg.metrics.latency_p99_ms),
            )
            if template is not None
        }
        try:
            evidence = await self._prometheus.evidence(
                job=cfg.metrics.job or cfg.rollout,
                templates=templates,
                slo_error_rate=cfg.slo.error_rate if cfg.slo else None,
                slo_p95_ms=cfg.slo.latency_p95_ms if cfg.slo else None,
                slo_p99_ms=cfg.slo.latency_p99_ms if cfg.slo else None,
                now=self._now(),
            )
            await self._cards.set_evidence(service, state, evidence)
        except RollbotError as err:
            log.warning("evidence for %s failed: %s", service, err.message)

    # ── the ticker ──────────────────────────────────────────────────────────────────────

    async def tick(self) -> None:
        """Resolve incidents quiet for the quiet period; refresh evidence of open ones."""
        now = self._now()
        resolved: list[tuple[str, Incident, core_incidents.Change]] = []
        if self._writer is not None and self._writer.unsaved:
            await self._writer.save(min(self._writer.unsaved))  # a failed round, again
        async with self._lock:
            for key, incident in list(self.incidents.items()):
                updated, change = core_incidents.tick(incident, now=now, quiet_period=self._quiet)
                if change is not None:
                    await self._save(key, updated, incident)
                    resolved.append((key, updated, change))
        for _key, incident, change in resolved:
            state = await self._state_of(incident)
            if state is not None:
                await self._show(incident.service, state, incident, change)
        for key, incident in list(self.incidents.items()):
            if incident.state is IncidentState.OPEN:
                state = await self._state_of(incident)
                if state is not None:
                    self._fetch_evidence(incident.service, state, key)

    async def run_ticker(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except RollbotError as err:
                log.warning("incident tick failed: %s", err.message)
            except Exception:
                log.exception("incident tick failed")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ── helpers ─────────────────────────────────────────────────────────────────────────

    def open_incident(self, service: str) -> Incident | None:
        """The service's newest incident that is not resolved, or None."""
        return self.book.open_incident(service)

    def _remember(self, service: str, state: RolloutState) -> None:
        self._states[service] = state
        self._card_states[card_key(state)] = state

    def _state_for(self, incident: Incident) -> RolloutState | None:
        """The last state seen of the incident's own revision (its card's key)."""
        return self._card_states.get(incident.card_key)

    async def _state_of(self, incident: Incident) -> RolloutState | None:
        """The last state seen of the incident's revision; after a restart (nothing seen
        yet) the Rollout is read, and used when it is still at that revision."""
        known = self._state_for(incident)
        if known is not None or incident.service not in self._catalog:
            return known
        try:
            state = await self._state(incident.service)
        except RollbotError as err:
            log.warning("incident %s: Rollout unreadable: %s", incident.card_key, err.message)
            return None
        return state if card_key(state) == incident.card_key else None

    async def _save(self, key: str, incident: Incident, before: Incident | None) -> None:
        """`incident` becomes `key`'s, and is written (with its firing alerts' summaries)
        before it is shown: what a replica that takes over reads back (`restore`)."""
        self.incidents[key] = incident
        await self._write(key, incident, before)

    async def _write(self, key: str, incident: Incident, before: Incident | None) -> None:
        """Write `key`'s incident as it is in memory, by the writer's next round (group
        commit). When that fails, memory goes back to `before` (unless another change
        followed), so the change is found again, and shown, when it is retried (the
        delivery's replay, the next tick or watch event)."""
        if self._writer is None:
            return
        try:
            await self._writer.save(key)
        except BaseException:
            if self.incidents.get(key) is incident:
                if before is None:
                    self.incidents.pop(key, None)
                else:
                    self.incidents[key] = before
            raise

    def _row(self, key: str) -> tuple[Incident, dict[str, str]] | None:
        incident = self.incidents.get(key)
        if incident is None:
            return None
        return incident, dict(self._alert_text.get(key, {}))

    async def restore(self) -> int:
        """Read back the incidents a previous leader left (not resolved, or resolved within
        `RESTORE_RESOLVED`), with their firing alerts' summaries; the number read. Called
        when this replica starts leading, before the watch and the replays run."""
        if self._store is None:
            return 0
        records = await self._store.load_incidents(since=self._now() - RESTORE_RESOLVED)
        async with self._lock:
            for record in records:
                key = record.incident.card_key
                self.incidents[key] = record.incident
                self._alert_text[key] = dict(record.alerts)
                self._cards.restored(
                    record.incident, alerts=self._alert_lines(key, record.incident)
                )
        return len(records)

    async def _state(self, service: str) -> RolloutState:
        loop = asyncio.get_running_loop()
        known = self._states.get(service)
        if (
            known is not None
            and loop.time() - self._read_at.get(service, -STATE_FRESH) < STATE_FRESH
        ):
            return known  # read a moment ago, and the watch's events since are in it
        cfg = self._catalog[service]
        try:
            state = await self._rollouts.cached_state(cfg.namespace, cfg.rollout)
        except RollbotError:
            known = self._states.get(service)
            if known is None:
                raise
            return known  # the watch's last word beats no card at all
        self._remember(service, state)
        self._read_at[service] = loop.time()
        return state

    async def _notice_unknown(self, alerts: list[Alert]) -> None:
        channel = self._settings.slack.fallback_channel
        now = self._now()
        names = sorted({a.name for a in alerts if a.firing})
        due = [n for n in names if self._throttle.due(n, now)]
        if not due or not channel:
            return
        known = ", ".join(f"`{s}`" for s in sorted(self._catalog))
        sample = next(a for a in alerts if a.name == due[0])
        # Whoever can reach Alertmanager writes these names and labels: escaped.
        labels = mrkdwn.escape(", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items())))
        shown = ", ".join(f"`{mrkdwn.escape(n)}`" for n in due)
        text = (
            f":grey_question: Alert{'s' if len(due) > 1 else ''} "
            f"{shown} match no service in rollbot's catalog "
            f"(e.g. {labels}). Known services: {known}. Add `alerts.match` to the service "
            f"that owns them; rollbot reports each alert name at most once an hour."
        )
        try:
            await self._chat.post(channel, text=text)
        except RollbotError as err:
            log.warning("could not post the unknown-alert notice: %s", err.message)

    async def _notice(self, service: str, text: str) -> None:
        try:
            await self._chat.post(self._catalog[service].channel, text=text)
        except RollbotError as err:
            log.warning("could not post a notice for %s: %s", service, err.message)
