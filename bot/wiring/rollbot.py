"""Composition root: builds the adapters from settings and wires HTTP, Slack and the watch.

Nothing here is a global: `build(settings)` returns a `Rollbot` holding every collaborator,
and `create_web_app(rollbot)` (bot.web.app) turns it into an ASGI app. Tests and the demo
build theirs the same way, pointing the real clients at bot/sim servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.actions import Responder
from bot.adapters.kubernetes import KubeRollouts
from bot.adapters.pagerduty import PagerDutyOnCall
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.slack import SlackChat, make_web_client
from bot.cards import Cards, card_key
from bot.core.errors import RollbotError, Unreachable
from bot.core.ports import Flags, Tickets, WatchEvent
from bot.incidents import IncidentEngine
from bot.paging import PagingEngine
from bot.releases import ReleaseEngine
from bot.runtime.leader import Leadership
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import Clock, JobScheduler, SystemClock
from bot.runtime.work import WorkQueue
from bot.settings import Settings
from bot.slack.app import create_bolt_app
from bot.slack.listeners import Deps
from bot.slack.verified import REPLAY_MEMORY
from bot.store import SqlStore, open_store
from bot.web.runbooks import send_runbook_link, slack_link_issuer

log = logging.getLogger(__name__)


@dataclass
class Rollbot:
    settings: Settings
    store: SqlStore
    chat: SlackChat
    rollouts: KubeRollouts
    cards: Cards
    responder: Responder
    bolt: AsyncApp
    metrics: Metrics
    web_client: Any
    work: WorkQueue
    incidents: IncidentEngine
    releases: ReleaseEngine
    scheduler: JobScheduler | None = None
    paging: PagingEngine | None = None
    prometheus: PrometheusMetrics | None = None
    alert_receiver: Any = None  # set by bot.web.app when the route is mounted
    watch_error: str | None = None
    leadership: Leadership | None = None
    # Called once the leader lease is lost (the server's way to exit and come back as a
    # standby); None: the process stays up, answering 503 and not ready.
    on_leadership_lost: Callable[[], None] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _scheduler_stopped: bool = False
    _pending: dict[tuple[str, str], bool] = field(default_factory=dict)

    def namespaces(self) -> list[str]:
        configured = list(self.settings.kubernetes.namespaces or [])
        return configured or sorted({s.namespace for s in self.settings.services.values()})

    async def on_watch_event(self, event: WatchEvent) -> None:
        self.metrics.watch_events.labels(event.kind, event.type).inc()
        self.metrics.watch_healthy.set(1)
        self.watch_error = None
        meta = event.object.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if event.kind == "Rollout":
            name = meta.get("name", "")
        else:
            owners = [o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Rollout"]
            if not owners:
                return
            name = owners[0].get("name", "")
        if event.type == "DELETED" and event.kind == "Rollout":
            return
        if self.cards.service_for(namespace, name) is None:
            return
        await self._refresh(namespace, name)

    async def _refresh(self, namespace: str, name: str) -> None:
        """Coalesce bursts: one refresh at a time per Rollout, re-run once if more came in."""
        key = (namespace, name)
        if key in self._pending:
            self._pending[key] = True
            return
        self._pending[key] = False
        try:
            while True:
                try:
                    state = await self.rollouts.get_state(namespace, name)
                    await self.incidents.on_rollout(state)
                    await self._show_circuit(namespace, name, state)
                    service = self.cards.service_for(namespace, name)
                    if service is not None:
                        await self.releases.on_rollout(service, state)
                except RollbotError as err:
                    log.warning(
                        "could not refresh the card of %s/%s: %s", namespace, name, err.message
                    )
                except Exception:  # boundary: nobody awaits this task; keep the re-run below
                    log.exception("could not refresh the card of %s/%s", namespace, name)
                if not self._pending.get(key):
                    break
                self._pending[key] = False
        finally:
            self._pending.pop(key, None)

    async def _show_circuit(self, namespace: str, name: str, state: Any) -> None:
        """Once a card exists, read the service's breaker so the card shows it (once)."""
        service = self.cards.service_for(namespace, name)
        if service is None or self.cards.circuit_known(service):
            return
        if await self.store.get_card(card_key(state)) is not None:
            await self.responder.read_circuit(service)

    async def on_watch_error(self, message: str) -> None:
        self.metrics.watch_errors.inc()
        self.metrics.watch_healthy.set(0)
        self.watch_error = message
        log.warning("watch degraded: %s", message)

    async def run_watch(self) -> None:
        await self.rollouts.watch(self.namespaces(), self._dispatch)

    async def _dispatch(self, event: WatchEvent) -> None:
        # Card updates must not stall the watch: each event is handled in its own task,
        # serialised per Rollout by _refresh.
        task = asyncio.create_task(self.on_watch_event(event))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def readiness_problems(self) -> list[str]:
        problems: list[str] = []
        try:
            await self.store.ping()
        except Exception as err:  # noqa: BLE001 - readiness reports, never raises
            # The probe's answer is public: name the failure, keep hosts and SQL in the log.
            log.warning("readiness: database check failed: %r", err)
            problems.append(f"database: {type(err).__name__}")
        if self.watch_error:
            problems.append(f"kubernetes watch: {self.watch_error}")
        if self.leadership is not None:
            standby = await self.leadership.problem()
            if standby is not None:
                problems.append(standby)
        return problems

    def fenced(self) -> bool:
        """True when this replica must not act on requests: it is a standby, or it lost
        the leader lease (bot.leader)."""
        return self.leadership is not None and self.leadership.fenced

    async def _start_background(self) -> None:
        """The leader's work: the watch, the incident ticker, the PagerDuty outbox, the
        scheduler and the replays of webhooks stored but never processed."""
        from bot.web.alertmanager import replay_pending

        background = self._background
        background.append(asyncio.create_task(self.run_watch(), name="rollbot-watch"))
        background.append(
            asyncio.create_task(self.incidents.run_ticker(), name="rollbot-incident-ticker")
        )
        if self.paging is not None:
            from bot.web.pagerduty import replay_pending as replay_pagerduty

            background.append(
                asyncio.create_task(self.paging.run_outbox(), name="rollbot-pagerduty-outbox")
            )
            replayed_pd = await replay_pagerduty(store=self.store, paging=self.paging)
            if replayed_pd:
                log.info("replayed %d stored PagerDuty webhook(s)", replayed_pd)
        if self.scheduler is not None:
            await self.scheduler.start(self.releases.run_job)
            background.append(
                asyncio.create_task(self.releases.run_reconciler(), name="rollbot-reconciler")
            )
        # Alert webhooks stored but never processed (the process died after its 200).
        replayed = await replay_pending(store=self.store, on_alerts=self.incidents.on_alerts)
        if replayed:
            log.info("replayed %d stored Alertmanager webhook(s)", replayed)

    async def _stop_background(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()

    async def _stop_scheduler(self) -> None:
        if self.scheduler is not None and not self._scheduler_stopped:
            self._scheduler_stopped = True
            await self.scheduler.stop()

    async def _lead(self, leadership: Leadership) -> None:
        """Standby until the lease is ours; then act until it is lost, and stop."""
        if not leadership.leading:
            log.info("standby: waiting for the leader lease (%s)", leadership.holder)
            await leadership.wait_until_leader()
            self.metrics.leader.set(1)
            await self._start_background()
        await leadership.keep()
        self.metrics.leader.set(0)
        log.critical("lost the leader lease: stopping the watch, scheduler and outbox")
        await self._stop_background()
        await self._stop_scheduler()
        if self.on_leadership_lost is not None:
            self.on_leadership_lost()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        leadership = self.leadership
        # One attempt before serving: a lone replica (or the first) leads from its first
        # request on, as before there were standbys.
        if leadership is None or await leadership.try_acquire():
            self.metrics.leader.set(1)
            await self._start_background()
        leading: asyncio.Task[None] | None = None
        if leadership is not None:
            leading = asyncio.create_task(self._lead(leadership), name="rollbot-leader")
        try:
            yield
        finally:
            if leading is not None:
                leading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leading
            await self._stop_background()
            if self.alert_receiver is not None:
                await self.alert_receiver.drain(timeout=10)
            refreshing = list(self._tasks)
            for task in refreshing:
                task.cancel()
            # Wait for them to unwind: one cancelled inside a database transaction must have
            # rolled it back before the lease is released, or SQLite keeps the write lock
            # and the release waits out the 30 s busy timeout (a SIGTERM soon after start
            # took 30 s to exit about one time in five).
            await asyncio.gather(*refreshing, return_exceptions=True)
            await self.aclose()

    async def aclose(self) -> None:
        await self._stop_scheduler()
        await self.work.close()
        await self.incidents.close()
        await self.cards.close()
        if self.leadership is not None:
            # After the acked backlog is done: the standby takes over at its next try.
            await self.leadership.release()
            self.metrics.leader.set(0)
        await self.store.close()
        if self.prometheus is not None:
            await self.prometheus.aclose()
        self.rollouts.close()


def make_flags(settings: Settings) -> Flags | None:
    """The configured flag provider's adapter, or None (Tier 2 then shows manual steps)."""
    cfg = settings.flags
    if cfg.provider is None:
        return None
    if not cfg.url or cfg.api_token is None:
        raise RollbotError(
            f"flags.provider is {cfg.provider} but flags.url or ROLLBOT_FLAGS__API_TOKEN is "
            f"missing (run `rollbot check-config`)."
        )
    if cfg.provider == "unleash":
        from bot.adapters.unleash import UnleashFlags

        return UnleashFlags(
            base_url=cfg.url,
            admin_token=cfg.api_token.get_secret_value(),
            project=cfg.project,
            environment=cfg.environment,
            client_token=cfg.client_token.get_secret_value() if cfg.client_token else None,
        )
    from bot.adapters.launchdarkly import LaunchDarklyFlags

    return LaunchDarklyFlags(
        base_url=cfg.url,
        api_token=cfg.api_token.get_secret_value(),
        project=cfg.project,
        environment=cfg.environment,
    )


def make_on_call(settings: Settings) -> PagerDutyOnCall | None:
    """PagerDuty on-call lookup, or None without an API token (owners-group policy only)."""
    pd = settings.pagerduty
    if pd.api_token is None:
        return None
    return PagerDutyOnCall(
        api_token=pd.api_token.get_secret_value(), base_url=pd.api_url, ca_file=pd.ca_file
    )


def make_paging(settings: Settings) -> Any:
    """PagerDuty incidents and notes (`PagerDutyPaging`), or None when no service has a
    routing key and no API token is set."""
    pd = settings.pagerduty
    routed = any(s.pagerduty.routing_key is not None for s in settings.services.values())
    if not routed and pd.api_token is None:
        return None
    from bot.adapters.pagerduty import PagerDutyPaging

    return PagerDutyPaging(
        api_token=pd.api_token.get_secret_value() if pd.api_token else None,
        api_url=pd.api_url,
        events_url=pd.events_url,
        from_email=pd.from_email,
        ca_file=pd.ca_file,
        max_retries=pd.max_retries,
    )


def make_tickets(settings: Settings) -> Tickets | None:
    """The Jira adapter, or None without ``jira.url`` (no tickets are filed)."""
    jira = settings.jira
    if not jira.url:
        return None
    if jira.api_token is None:
        raise RollbotError(
            "jira.url is set but ROLLBOT_JIRA__API_TOKEN is missing (run `rollbot check-config`)."
        )
    from bot.adapters.jira import JiraTickets

    return JiraTickets(
        url=jira.url,
        email=jira.email,
        api_token=jira.api_token.get_secret_value(),
        timeout=jira.timeout_seconds,
        # No retries inside the client: it would re-send a POST after a connection error
        # (a duplicate ticket). rollbot retries itself: search by label, then create.
        max_retries=0,
    )


def make_release_engine(
    settings: Settings,
    *,
    store: SqlStore,
    chat: SlackChat,
    rollouts: Any,
    clock: Clock,
    scheduler: JobScheduler | None,
    flags: Flags | None = None,
    on_call: PagerDutyOnCall | None = None,
) -> ReleaseEngine:
    return ReleaseEngine(
        settings=settings,
        store=store,
        chat=chat,
        rollouts=rollouts,
        tickets=make_tickets(settings),
        clock=clock,
        flags=flags,
        pagerduty=on_call,
        scheduler=scheduler,
        public_url=settings.server.public_url,
        slack_team_url=settings.slack.team_url,
    )


class _NoCluster:
    """Rollouts for a process without cluster access: every read says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def get_state(self, namespace: str, name: str) -> Any:
        raise Unreachable("Kubernetes", self.reason)

    async def analysis_templates(self, namespace: str, name: str) -> dict[str, bool]:
        raise Unreachable("Kubernetes", self.reason)

    def close(self) -> None:
        pass


async def build_release_engine(
    settings: Settings, *, clock: Clock | None = None
) -> tuple[ReleaseEngine, Callable[[], Awaitable[None]]]:
    """Just what `rollbot release …` needs, without HTTP, watch or scheduler. Returns the
    engine and a coroutine function that closes what it opened."""
    slack = settings.slack
    if slack.bot_token is None:
        raise RollbotError("Slack credentials missing: set ROLLBOT_SLACK__BOT_TOKEN.")
    store = await open_store(settings.database.url)
    web_client = make_web_client(slack.bot_token.get_secret_value(), slack.api_url)
    kube = settings.kubernetes
    rollouts: KubeRollouts | _NoCluster
    try:
        rollouts = KubeRollouts.from_kubeconfig(
            kubeconfig=kube.kubeconfig,
            context=kube.context,
            request_timeout=kube.request_timeout_seconds,
            watch_timeout_seconds=int(kube.watch_timeout_seconds),
            cursor_store=store,
        )
    except RollbotError as err:
        # A CI job often has no cluster access: the release still starts; the checklist
        # says the cluster was not checked, and the bot's watch binds the revision.
        rollouts = _NoCluster(err.message)
    engine = make_release_engine(
        settings,
        store=store,
        chat=SlackChat(web_client),
        rollouts=rollouts,
        clock=clock or SystemClock(),
        scheduler=None,
        flags=make_flags(settings),
        on_call=make_on_call(settings),
    )

    async def close() -> None:
        await store.close()
        rollouts.close()

    return engine, close


async def build(
    settings: Settings, *, rollouts: KubeRollouts | None = None, clock: Clock | None = None
) -> Rollbot:
    slack = settings.slack
    if slack.bot_token is None or slack.signing_secret is None:
        raise RollbotError(
            "Slack credentials missing: set ROLLBOT_SLACK__BOT_TOKEN and "
            "ROLLBOT_SLACK__SIGNING_SECRET (or their *_FILE variants)."
        )
    store = await open_store(settings.database.url)
    web_client = make_web_client(slack.bot_token.get_secret_value(), slack.api_url)
    chat = SlackChat(web_client)
    kube = settings.kubernetes
    if rollouts is None:
        rollouts = KubeRollouts.from_kubeconfig(
            kubeconfig=kube.kubeconfig,
            context=kube.context,
            request_timeout=kube.request_timeout_seconds,
            watch_timeout_seconds=int(kube.watch_timeout_seconds),
            cursor_store=store,
        )
    metrics = Metrics()
    flags = make_flags(settings)
    on_call = make_on_call(settings)
    cards = Cards(
        chat=chat,
        store=store,
        catalog=settings.services,
        public_url=settings.server.public_url,
        circuit_available=flags is not None,
        circuit_environment=settings.flags.environment if flags is not None else None,
    )
    prometheus = (
        PrometheusMetrics(
            base_url=settings.prometheus.url,
            timeout=settings.prometheus.query_timeout_seconds,
            graph_url=settings.prometheus.graph_base_url,
        )
        if settings.prometheus.url
        else None
    )
    incidents = IncidentEngine(
        settings=settings, rollouts=rollouts, cards=cards, chat=chat, prometheus=prometheus
    )
    responder = Responder(
        catalog=settings.services,
        rollouts=rollouts,
        chat=chat,
        store=store,
        cards=cards,
        verify_timeout=kube.verify_timeout_seconds,
        poll_interval=kube.verify_interval_seconds,
        metrics=metrics,
        flags=flags,
        on_call=on_call,
        on_call_timeout=settings.pagerduty.on_call_timeout_seconds,
    )
    clock = clock or SystemClock()
    scheduler = (
        JobScheduler(
            database_url=settings.database.url,
            store=store,
            clock=clock,
            lease_ttl=settings.releases.lease_ttl_seconds,
            renew_every=settings.releases.lease_ttl_seconds / 3,
        )
        if settings.releases.scheduler
        else None
    )
    releases = make_release_engine(
        settings,
        store=store,
        chat=chat,
        rollouts=rollouts,
        clock=clock,
        scheduler=scheduler,
        flags=flags,
        on_call=on_call,
    )
    pager = make_paging(settings)
    paging = None
    if pager is not None:
        paging = PagingEngine(
            settings=settings,
            store=store,
            chat=chat,
            cards=cards,
            paging=pager,
            incidents=incidents,
            responder=responder,
            link_issuer=functools.partial(send_runbook_link, settings, chat),
        )
        incidents.listeners.append(paging.on_incident)
        responder.listeners.append(paging.after_action)
    work = WorkQueue(workers=settings.server.workers)
    bolt = create_bolt_app(
        signing_secret=slack.signing_secret.get_secret_value(),
        client=web_client,
        deps=Deps(
            responder=responder,
            chat=chat,
            first_seen=functools.partial(
                store.first_seen, source="slack", forget_after=REPLAY_MEMORY
            ),
            work=work,
            command=slack.command,
            releases=releases,
            release_command=slack.release_command,
            runbook_link=slack_link_issuer(settings),
            acknowledge=paging.acknowledge if paging is not None else None,
        ),
    )
    rollbot = Rollbot(
        settings=settings,
        store=store,
        chat=chat,
        rollouts=rollouts,
        cards=cards,
        responder=responder,
        bolt=bolt,
        metrics=metrics,
        web_client=web_client,
        work=work,
        incidents=incidents,
        releases=releases,
        scheduler=scheduler,
        paging=paging,
        prometheus=prometheus,
        leadership=Leadership(store, ttl=settings.server.leader_lease_seconds),
    )
    rollouts.on_watch_error = rollbot.on_watch_error
    return rollbot
