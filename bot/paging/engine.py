"""PagerDuty, both ways: incidents for cards, notes for actions, webhooks back to the card,
and PagerDuty-linked runbook buttons (Incident Workflows) executed through the responder.

    card opens (incident OPEN) ─► outbox ─► Events API v2 trigger (dedup_key per service and
                                            revision, runbook + thread links, evidence)
    action (any source) ─► outbox ─► REST note on the PagerDuty incident (From: rollbot)
    verified mitigation (abort, circuit open) ─► a note, and acknowledge: someone acted,
        the page stops escalating, but the incident is not over while signals fire
    card's incident resolved (signals quiet for the quiet period) ─► Events API resolve
    mitigation undone (circuit closed, rollout retried) while signals still fire ─► paged
        again: the acknowledged incident is resolved with a note saying why, and a new one
        triggered (dedup key `…#2`): an acknowledged PagerDuty incident never notifies
        again, whatever it receives, so a new incident is the only way to page
    v3 webhook (acknowledged, resolved, annotated, escalated, reassigned) ─► card + thread
        (rollbot's own acknowledge and resolve, back through the Events API: card only)
    workflow webhook ("Rollback Tier 1: abort") ─► PagerDuty user → email → Slack user ─►
        the same responder and policy as Slack ─► note with the verified result

Outgoing calls go through the durable outbox (bot.store), drained by `run_outbox`:

- PagerDuty down (5xx, unreachable, 429): the work waits and is retried with backoff
  (doubling from 0.5 s up to `MAX_BACKOFF`, in rollbot time like the scheduler's jobs, so
  drills and tests can speed it up; a `Retry-After` is obeyed as given), and the card's
  thread says so once per incident. The first call PagerDuty answers again brings every
  waiting item forward: nothing sits out the rest of its backoff once it is back.
- Events for one PagerDuty incident (one dedup key) go in the order they were queued:
  an acknowledge or resolve never overtakes the trigger still waiting before it
  (PagerDuty drops an acknowledge for an incident it does not know).
- Refused for good (a 4xx other than 429: the call itself is wrong, say an invalid routing
  key): parked, not dropped. The item stays in the outbox with PagerDuty's reason, is
  never retried, is counted in ``rollbot_outbox_parked_total{kind}`` and is said once in
  the card's thread.
- Each outgoing event is enqueued once (dedup keys), so nothing is paged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.core import mrkdwn
from bot.core import tiers as core_tiers
from bot.core.errors import (
    PermanentError,
    RollbotError,
    TemporaryError,
)
from bot.core.model import (
    Actor,
    FlagAction,
    Incident,
    IncidentState,
    RolloutAction,
    RolloutState,
)

if TYPE_CHECKING:
    from bot.actions import ActionResult
    from bot.cards import Cards
    from bot.core.links import IssuedLink
    from bot.core.ports import Chat
    from bot.runtime.metrics import Metrics
    from bot.runtime.scheduler import Clock
    from bot.settings import ServiceSettings, Settings
    from bot.store import OutboxItem, SqlStore

log = logging.getLogger(__name__)

OUTBOX_EVENT = "pagerduty.event"
OUTBOX_NOTE = "pagerduty.note"
MAX_BACKOFF = 60.0
"""Longest wait between two attempts of one item (rollbot seconds). A page is urgent: once
PagerDuty is back, the next attempt comes within a minute (and brings the rest along)."""
MITIGATIONS = {RolloutAction.ABORT.value, FlagAction.CIRCUIT_OPEN.value}
# What undoes a mitigation: the breaker shut again, the aborted rollout retried.
UNDOS = {FlagAction.CIRCUIT_CLOSE.value, RolloutAction.RETRY.value}

# (service, Slack user, name, why) → the link sent to that person only (a Slack DM), or
# None when none was (links off; or not set up, and the DM said why).
LinkIssuer = Callable[[str, str, str, str], Awaitable["IssuedLink | None"]]
LINK_NOTICE_KIND = "runbook-link"


def dedup_key(service: str, card_key: str) -> str:
    """Stable per service and Rollout revision: ``rollbot/payment-router/payments/…@42``."""
    return f"rollbot/{service}/{card_key}"


def parse_dedup_key(key: str) -> tuple[str, str] | None:
    """(service, card key) of a dedup key rollbot made (a re-page's `#2` suffix ignored),
    else None."""
    prefix, _, rest = key.partition("/")
    service, _, card = rest.partition("/")
    card = card.partition("#")[0]
    if prefix != "rollbot" or not service or "@" not in card:
        return None
    return service, card


class OpenIncidents(Protocol):
    """Where the service's open incident is read (`bot.incidents.IncidentBook`)."""

    def open_incident(self, service: str) -> Incident | None: ...


class PagingEngine:
    def __init__(
        self,
        *,
        settings: Settings,
        store: SqlStore,
        chat: Chat,
        cards: Cards,
        paging: Any,  # bot.adapters.pagerduty.PagerDutyPaging
        incidents: OpenIncidents | None = None,
        link_issuer: LinkIssuer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 0.25,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`now`: the outbox's time (wall time, as the store's); `clock`: rollbot time, in
        which the backoff is counted (None: wall time); `metrics`: where parked items are
        counted."""
        self.settings = settings
        self.catalog = settings.services
        self.store = store
        self.chat = chat
        self.cards = cards
        self.paging = paging
        self.incidents = incidents
        self.link_issuer = link_issuer
        self.now = now
        self.poll_interval = poll_interval
        self.metrics = metrics
        self.clock = clock
        self._incident_ids: dict[str, str] = {}  # dedup key → PagerDuty incident id
        self._pages: dict[str, int] = {}  # card key → times paged again (its key's suffix)
        self._states: dict[str, RolloutState] = {}  # card key → its Rollout when last told
        # The Events API calls this process queued (`enqueue_event`): not asked again.
        self._queued: set[str] = set()
        self._wake = asyncio.Event()
        # Parked items whose thread line could not be posted yet: (notice, card, text).
        self._untold: list[tuple[str, str, str]] = []

    # ── which services page ─────────────────────────────────────────────────────────────

    def pages(self, service: str) -> bool:
        cfg = self.catalog.get(service)
        return self.paging is not None and cfg is not None and cfg.pagerduty.routing_key is not None

    def service_by_pd_id(self, service_id: str) -> str | None:
        for name, cfg in self.catalog.items():
            if cfg.pagerduty.service_id == service_id:
                return name
        return None

    def open_incident(self, service: str) -> Incident | None:
        return self.incidents.open_incident(service) if self.incidents is not None else None

    async def _load_pages(self, card: str) -> None:
        """How many times the card's incident was paged again, from the incident's record
        when this process has not been told yet (after a restart or a failover): the
        dedup key of a resolve must be the one triggered last."""
        if card in self._pages:
            return
        record = await self.store.get_incident(card)
        if record is not None:
            self._pages.setdefault(card, record.pages)

    async def key_now(self, service: str, card: str) -> str:
        """`current_key`, the paged-again count read from the database first if need be."""
        await self._load_pages(card)
        return self.current_key(service, card)

    def current_key(self, service: str, card: str) -> str:
        """The dedup key of the card's PagerDuty incident now: `dedup_key`, or `…#N` once
        an undone mitigation paged again."""
        again = self._pages.get(card, 0)
        key = dedup_key(service, card)
        return f"{key}#{again + 1}" if again else key

    # ── cards → PagerDuty ───────────────────────────────────────────────────────────────

    async def on_incident(self, service: str, state: RolloutState, incident: Incident) -> None:
        """The incident engine's listener: trigger when a card's incident opens, resolve
        when it is over."""
        if not self.pages(service):
            return
        self._states[incident.card_key] = state
        await self._load_pages(incident.card_key)
        key = self.current_key(service, incident.card_key)
        opened = incident.opened_at.isoformat()
        if incident.state is IncidentState.OPEN:
            await self._trigger(service, state, incident, key)
        elif incident.state is IncidentState.RESOLVED:
            await self.enqueue_event(
                f"resolve:{key}:{opened}",
                {"action": "resolve", "service": service, "dedup_key": key},
            )

    async def _trigger(
        self,
        service: str,
        state: RolloutState,
        incident: Incident,
        key: str,
        *,
        again: str | None = None,
    ) -> None:
        cfg = self.catalog[service]
        summary = incident_title(service, state, incident)
        if again:
            summary = f"{summary} (paged again: {again})"[:1024]
        await self.enqueue_event(
            f"trigger:{key}:{incident.opened_at.isoformat()}",
            {
                "action": "trigger",
                "service": service,
                "dedup_key": key,
                "summary": summary,
                "source": f"{state.namespace}/{state.name}",
                "severity": cfg.pagerduty.severity,
                "component": service,
                "group": state.namespace,
                "class": "canary" if core_tiers.canary_in_progress(state) else "release",
                "custom_details": _details(service, state, incident, cfg),
                "links": await self._links(service, incident.card_key),
            },
        )

    async def after_action(
        self, service: str, action: str, actor: Actor, result: ActionResult, card: str | None
    ) -> None:
        """The responder's listener: a note for every action and its verified result; a
        verified mitigation acknowledges the PagerDuty incident (it resolves with the
        card's incident); undoing one while signals still fire pages again."""
        if not self.pages(service):
            return
        if card is None:
            incident = self.open_incident(service)
            card = incident.card_key if incident is not None else None
        if card is None:
            return
        await self._load_pages(card)
        key = self.current_key(service, card)
        verification = result.verification
        checks = f" ({verification.describe()})" if verification is not None else ""
        seconds = f", verified in {verification.seconds:.1f} s" if verification else ""
        via = {"pagerduty": "PagerDuty", "runbook": "the runbook page"}.get(actor.source, "Slack")
        content = (
            f"rollbot: {action} by {actor.name} (via {via}): {result.status}{seconds}{checks}. "
            f"{_plain(result.message)}"
        )
        stamp = self.now().isoformat()
        await self.store.enqueue(
            OUTBOX_NOTE,
            {"service": service, "dedup_key": key, "content": content[:20000]},
            f"pd-note:{key}:{action}:{actor.id}:{stamp}",
        )
        if result.status == "succeeded" and action in MITIGATIONS:
            await self.enqueue_event(
                f"ack:{key}:{action}:{stamp}",
                {"action": "acknowledge", "service": service, "dedup_key": key},
            )
        elif result.status == "succeeded" and action in UNDOS:
            await self._page_again(service, card, key, action, actor, stamp)
        self._wake.set()

    async def _page_again(
        self, service: str, card: str, key: str, action: str, actor: Actor, stamp: str
    ) -> None:
        """A mitigation undone while the card's incident still fires: the acknowledged
        PagerDuty incident would never notify again, so it is resolved, saying why, and a
        new one is triggered for the same card."""
        incident = self.incidents.open_incident(service) if self.incidents else None
        if (
            incident is None
            or incident.card_key != card
            or incident.state is not IncidentState.OPEN
        ):
            return
        state = self._states.get(card)
        if state is None:
            return
        self._pages[card] = await self.store.bump_incident_pages(card)
        new_key = self.current_key(service, card)
        why = f"{action} by {actor.name} undid the mitigation while signals still fire"
        await self.enqueue_note(
            service, key, f"rollbot: {why}; paging again as a new incident.", f"pd-note:{key}:again"
        )
        await self.enqueue_event(
            f"resolve:{key}:again", {"action": "resolve", "service": service, "dedup_key": key}
        )
        await self._trigger(service, state, incident, new_key, again=why)

    async def enqueue_note(self, service: str, key: str, content: str, dedup: str) -> None:
        """Queue a note on the incident of dedup key `key` (once per `dedup`)."""
        await self.store.enqueue(
            OUTBOX_NOTE, {"service": service, "dedup_key": key, "content": content}, dedup
        )
        self._wake.set()

    def remember_incident(self, key: str, incident_id: str) -> None:
        """PagerDuty told us the incident id of a dedup key (a workflow's body does)."""
        self._incident_ids[key] = incident_id

    async def enqueue_event(self, dedup: str, payload: dict[str, Any]) -> None:
        """Queue an Events API call once per `dedup` (the outbox's unique key); one this
        process queued already is not asked again (an alert storm's repeats tell the same
        incident over and over)."""
        if dedup in self._queued:
            return
        if await self.store.enqueue(OUTBOX_EVENT, payload, f"pd-event:{dedup}"):
            self._wake.set()
        self._queued.add(dedup)

    async def _links(self, service: str, card: str) -> list[dict[str, str]]:
        links: list[dict[str, str]] = []
        public = self.settings.server.public_url
        if public:
            links.append({"href": f"{public}/runbooks/{service}", "text": "Runbook (rollbot)"})
        record = await self.store.get_card(card)
        team = self.settings.slack.team_url
        if record is not None and record.ts and team:
            ts = record.ts.replace(".", "")
            links.append(
                {"href": f"{team}/archives/{record.channel}/p{ts}", "text": "Slack card and thread"}
            )
        return links

    # ── the outbox ──────────────────────────────────────────────────────────────────────

    async def run_outbox(self) -> None:
        """Drain the PagerDuty outbox until cancelled (retries with backoff)."""
        while True:
            try:
                await self.drain()
            except Exception:  # boundary: the loop must survive one bad pass
                log.exception("PagerDuty outbox pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def drain(self) -> int:
        """One pass over the waiting items, in the order they were queued; returns how many
        were delivered."""
        untold, self._untold = self._untold, []
        for notice in untold:
            if not await self._tell_once(*notice):
                self._untold.append(notice)
        done = 0
        now = self.now()
        waiting: set[str] = set()  # PagerDuty incidents whose earlier event still waits
        for item in await self.store.pending_outbox():
            if item.kind not in (OUTBOX_EVENT, OUTBOX_NOTE):
                continue
            key = str(item.payload.get("dedup_key", "")) if item.kind == OUTBOX_EVENT else ""
            if key in waiting or item.next_attempt_at > now:
                if key:
                    waiting.add(key)  # its events stay in order: none overtakes this one
                continue
            try:
                if item.kind == OUTBOX_EVENT:
                    await self._send_event(item.payload)
                else:
                    await self._send_note(item.payload)
            except TemporaryError as err:
                await self.store.outbox_retry(item.id, err.message, self._retry_at(item, err))
                if key:
                    waiting.add(key)
                await self._tell_down(item.payload, err)
                continue
            except RollbotError as err:
                await self._park(item, err)
                continue
            await self.store.outbox_done(item.id)
            done += 1
            if item.attempts and await self.store.outbox_due_now(self.now()):
                # It had failed before and went through: PagerDuty answers again, so what
                # waits for it goes now instead of at the end of its backoff.
                self._wake.set()
        return done

    def _retry_at(self, item: OutboxItem, err: TemporaryError) -> datetime:
        """When to try `item` again: after the delay the error gives (PagerDuty's
        `Retry-After`, as given), else after a backoff doubling from 0.5 s up to
        `MAX_BACKOFF` seconds of rollbot time."""
        if err.delay:
            return self.now() + timedelta(seconds=err.delay)
        backoff = timedelta(seconds=min(MAX_BACKOFF, 0.5 * 2 ** min(item.attempts, 10)))
        if self.clock is None:
            return self.now() + backoff
        at = self.clock.now()
        return self.now() + (self.clock.wall(at + backoff) - self.clock.wall(at))

    async def _park(self, item: OutboxItem, err: RollbotError) -> None:
        """PagerDuty refused the call for good: kept with why, counted, said once in the
        card's thread; never retried."""
        log.warning("PagerDuty %s %s refused for good, parked: %s", item.kind, item.id, err)
        await self.store.outbox_park(item.id, f"refused: {err.message}")
        if self.metrics is not None:
            self.metrics.outbox_parked.labels(item.kind).inc()
        service = str(item.payload.get("service", ""))
        parsed = parse_dedup_key(str(item.payload.get("dedup_key", "")))
        if parsed is None:
            return
        if item.kind == OUTBOX_EVENT:
            action = str(item.payload.get("action", ""))
            what = {"trigger": "the page"}.get(action, f"the {action}")
        else:
            what = "a note"
        notice = (
            f"pd-parked:{item.id}",
            parsed[1],
            f":x: PagerDuty refused {what} for `{mrkdwn.escape(service)}` for good "
            f"({mrkdwn.escape(err.message)}). rollbot does not retry it: it is kept as "
            f"outbox item {item.id}. Check `services.{mrkdwn.escape(service)}.pagerduty` "
            "and the service's integration in PagerDuty.",
        )
        if not await self._tell_once(*notice):
            self._untold.append(notice)  # a parked item has no next attempt: said later

    async def _send_event(self, payload: dict[str, Any]) -> None:
        service = str(payload["service"])
        cfg = self.catalog.get(service)
        if cfg is None or cfg.pagerduty.routing_key is None:
            raise PermanentError(f"{service} has no PagerDuty routing key any more")
        routing = cfg.pagerduty.routing_key.get_secret_value()
        action = payload["action"]
        if action == "trigger":
            await self.paging.trigger(
                routing,
                dedup_key=payload["dedup_key"],
                summary=payload["summary"],
                source=payload["source"],
                severity=payload["severity"],
                custom_details=payload["custom_details"],
                links=payload["links"],
                component=payload.get("component"),
                group=payload.get("group"),
                class_=payload.get("class"),
            )
        elif action == "acknowledge":
            await self.paging.acknowledge(routing, payload["dedup_key"])
        else:
            await self.paging.resolve(routing, payload["dedup_key"])

    async def _send_note(self, payload: dict[str, Any]) -> None:
        """Notes are not idempotent in PagerDuty, and an attempt whose answer was lost (or
        a crash before the outbox heard back) leaves the note made but the item due: so
        the incident's notes are read first, and a note with this content already there is
        not added again."""
        key = str(payload["dedup_key"])
        incident_id = await self._incident_id(key)
        if incident_id is None:
            if await self._page_refused(key):
                raise PermanentError("its incident was never opened: PagerDuty refused the page")
            raise TemporaryError("the PagerDuty incident is not there yet", delay=1.0)
        content = str(payload["content"])
        if content in await self.paging.note_contents(incident_id):
            log.info("note on %s was added by an earlier attempt; not adding it again", incident_id)
            return
        await self.paging.add_note(incident_id, content)

    async def _page_refused(self, key: str) -> bool:
        """Whether the trigger of dedup key `key` was parked (its incident will never be)."""
        return any(
            item.kind == OUTBOX_EVENT
            and item.payload.get("action") == "trigger"
            and item.payload.get("dedup_key") == key
            for item in await self.store.parked_outbox()
        )

    async def _incident_id(self, key: str) -> str | None:
        known = self._incident_ids.get(key)
        if known is not None:
            return known
        incident = await self.paging.incident_by_key(key)
        if incident is None:
            return None
        self._incident_ids[key] = str(incident["id"])
        return self._incident_ids[key]

    async def _tell_down(self, payload: dict[str, Any], err: TemporaryError) -> None:
        service = str(payload.get("service", ""))
        parsed = parse_dedup_key(str(payload.get("dedup_key", "")))
        if parsed is None or "not there yet" in err.message:
            return
        await self._tell_once(
            f"pd-down:{payload.get('dedup_key')}",
            parsed[1],
            f":warning: PagerDuty is unreachable ({mrkdwn.escape(err.message)}); rollbot keeps "
            f"retrying the page and its notes for `{mrkdwn.escape(service)}`.",
        )

    # ── PagerDuty → cards ───────────────────────────────────────────────────────────────

    async def on_webhook(self, payload: dict[str, Any]) -> None:
        """One signed, de-duplicated v3 delivery. (Workflow actions come by their own path,
        `on_workflow`: a signed body is never taken as one, nor a bearer one as an event.)"""
        event = payload.get("event")
        if isinstance(event, dict) and "event_type" in event:
            await self._on_event(event)
        else:
            log.info("PagerDuty delivery of an unknown shape ignored (keys %s)", sorted(payload))

    async def _on_event(self, event: dict[str, Any]) -> None:
        """A v3 event on the card and in its thread. Everything in it is PagerDuty's (a
        user's name, a note, the incident's URL): escaped, and the URL linked only when it
        is a web URL."""
        kind = str(event.get("event_type", ""))
        data = event.get("data") or {}
        agent = event.get("agent") or {}
        # Through the Events API on an incident rollbot opened: rollbot's own acknowledge or
        # resolve coming back. The card shows it; the thread told it already (the verified
        # action's line, the card's incident resolving), so it gets no line of its own.
        own = "inbound_integration" in str(agent.get("type", ""))
        who = "rollbot" if own else mrkdwn.safe(str(agent.get("summary") or "someone"), 200)
        incident = data if data.get("type") == "incident" else data.get("incident") or {}
        key = str(incident.get("incident_key") or "")
        if incident.get("id") and key:
            self._incident_ids[key] = str(incident["id"])
        parsed = parse_dedup_key(key) if key else None
        if parsed is None and incident.get("id"):
            parsed = await self._parsed_from_id(str(incident["id"]))
        if parsed is None:
            log.info("PagerDuty %s for an incident rollbot did not open: ignored", kind)
            return
        service, card = parsed
        url = str(incident.get("html_url") or "")
        link = (
            mrkdwn.link(url, "PagerDuty incident")
            if mrkdwn.is_web_url(url)
            else "PagerDuty incident"
        )
        if kind == "incident.triggered":
            await self.cards.pager_changed(card, f":pager: {link} triggered", line=None)
        elif kind == "incident.acknowledged":
            line = None if own else f"PagerDuty: acknowledged by {who}"
            await self.cards.pager_changed(card, f":pager: {link} acknowledged by {who}", line=line)
            if not own:
                await self._send_link(service, card, agent)
        elif kind == "incident.resolved":
            line = None if own else f"PagerDuty: resolved by {who}"
            await self.cards.pager_changed(card, f":pager: {link} resolved by {who}", line=line)
        elif kind == "incident.escalated":
            assigned = mrkdwn.safe(
                ", ".join(
                    str((a.get("assignee") or a).get("summary", ""))
                    for a in incident.get("assignments") or []
                ),
                500,
            )
            text = f"PagerDuty: escalated{' to ' + assigned if assigned else ''}"
            await self.cards.pager_changed(card, f":pager: {link} escalated", line=text)
        elif kind == "incident.reassigned":
            await self._thread(card, f"PagerDuty: reassigned by {who}")
        elif kind == "incident.annotated":
            content = str(data.get("content") or "")
            if content.startswith("rollbot:") or self._is_rollbot(agent):
                return  # our own notes come back as annotations
            note = mrkdwn.escape(mrkdwn.clip(content, 2000))
            await self._thread(card, f"PagerDuty note by {who}: {note}")
        else:
            log.debug("PagerDuty %s: nothing to show", kind)

    def _is_rollbot(self, agent: dict[str, Any]) -> bool:
        mine = (self.settings.pagerduty.from_email or "").lower()
        return bool(mine) and str(agent.get("email", "")).lower() == mine

    async def _parsed_from_id(self, incident_id: str) -> tuple[str, str] | None:
        for key, known in self._incident_ids.items():
            if known == incident_id:
                return parse_dedup_key(key)
        try:
            incident = await self.paging.incident(incident_id)
        except RollbotError as err:
            log.info("PagerDuty incident %s not read: %s", incident_id, err.message)
            return None
        key = str(incident.get("incident_key") or "")
        if key:
            self._incident_ids[key] = incident_id
        return parse_dedup_key(key)

    async def _send_link(self, service: str, card: str, agent: dict[str, Any]) -> None:
        """A signed runbook link for the responder who acknowledged, to that person only:
        a Slack DM. Never an incident note: everyone on the incident reads those, and the
        link acts as its person. The incident's note says a link was sent, without it.

        Once per acknowledgement: the link sent to this person for this incident is
        recorded (`runbook-link-dm:{dedup key}:{PagerDuty user}`); while it is still
        valid, the same acknowledgement delivered again sends nothing. A later
        acknowledgement by them, after it expired, gets a fresh one."""
        if self.link_issuer is None or not agent.get("id"):
            return
        try:
            user = await self.paging.user(str(agent["id"]))
        except RollbotError as err:
            log.info("PagerDuty user %s not read: %s", agent.get("id"), err.message)
            return
        slack_id = await self.slack_user(str(user.get("email") or ""))
        if slack_id is None:
            return
        name = str(user.get("name") or slack_id)
        key = dedup_key(service, card)
        notice = f"runbook-link-dm:{key}:{agent['id']}"
        sent_at = await self.store.notice_sent_at(notice)
        ttl = timedelta(seconds=self.settings.server.link_ttl_seconds)
        if sent_at is not None and self.now() - sent_at < ttl:
            return  # this acknowledgement's link went out and still works
        if sent_at is not None:
            await self.store.unmark_notice(notice)
        if not await self.store.mark_notice_sent(notice, release_id=LINK_NOTICE_KIND):
            return
        why = "You acknowledged the PagerDuty incident. "
        try:
            link = await self.link_issuer(service, slack_id, name, why)
        except RollbotError as err:
            await self.store.unmark_notice(notice)  # not sent: a redelivery may try again
            log.warning("runbook link for %s not sent: %s", slack_id, err.message)
            return
        if link is None:
            return
        minutes = max(1, round(link.ttl.total_seconds() / 60))
        await self.store.enqueue(
            OUTBOX_NOTE,
            {
                "service": service,
                "dedup_key": key,
                "content": f"rollbot: sent {name} a signed runbook link with rollback buttons "
                f"as a Slack direct message (personal, single use, valid {minutes} min).",
            },
            f"pd-note:{key}:link:{agent['id']}:{self.now().isoformat()}",
        )
        self._wake.set()

    async def note_now(self, incident_id: str, content: str) -> None:
        try:
            await self.paging.add_note(incident_id, content)
        except RollbotError as err:
            log.warning("note on %s not added: %s", incident_id, err.message)

    async def slack_user(self, email: str) -> str | None:
        if not email:
            return None
        try:
            return await self.chat.user_id_by_email(email)
        except RollbotError as err:
            log.info("Slack lookup of %s failed: %s", email, err.message)
            return None

    async def _thread(self, card: str, text: str) -> bool:
        """Post a line in the card's thread; False when it was not (no card yet, or Slack
        refused: logged)."""
        record = await self.store.get_card(card)
        if record is None or record.ts is None:
            return False
        try:
            await self.chat.post(record.channel, text=text, thread_ts=record.ts)
        except RollbotError as err:
            log.warning("thread line on %s not posted: %s", card, err.message)
            return False
        return True

    async def _tell_once(self, notice: str, card: str, text: str) -> bool:
        """Say `text` in the card's thread once: the notice is marked first (so two passes
        never both say it) and unmarked when the line could not be posted, so the next
        occasion says it instead of nobody. False when it was not said now."""
        if not await self.store.mark_notice_sent(notice, release_id="pagerduty"):
            return True
        if await self._thread(card, text):
            return True
        await self.store.unmark_notice(notice)
        return False


def incident_title(service: str, state: RolloutState, incident: Incident) -> str:
    """The incident's title, in the service's real state: a canary's weight only while
    there is a canary; a fully rolled-out or aborted revision said as such."""
    why = "; ".join(text for _, text in incident.summaries[:3]) or "unhealthy"
    if state.aborted:
        where = f"revision {state.revision} (aborted: traffic on the stable version)"
    elif core_tiers.canary_in_progress(state):
        where = f"canary revision {state.revision} at {state.canary_weight}%"
    else:
        where = f"revision {state.revision} (fully rolled out)"
    return f"{service} {where}: {why}"[:1024]


def _details(
    service: str, state: RolloutState, incident: Incident, cfg: ServiceSettings
) -> dict[str, Any]:
    slo = cfg.slo
    return {
        "service": service,
        "rollout": f"{state.namespace}/{state.name}",
        "revision": state.revision,
        "phase": state.phase,
        "step": state.step_label,
        "canary_weight": state.canary_weight,
        "canary_image": state.canary_image,
        "stable_image": state.stable_image,
        "analysis": None
        if state.analysis is None
        else f"{state.analysis.status}: {state.analysis.message}",
        "signals": [text for _, text in incident.summaries],
        "slo": {
            "error_rate": slo.error_rate,
            "latency_p95_ms": slo.latency_p95_ms,
            "latency_p99_ms": slo.latency_p99_ms,
        },
        "first_breach_at": incident.first_breach_at.isoformat()
        if incident.first_breach_at
        else None,
    }


def _plain(text: str) -> str:
    """Slack mrkdwn to plain text for PagerDuty notes (links, emphasis and entities)."""
    return mrkdwn.plain(text)
