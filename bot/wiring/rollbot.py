"""The assembled rollbot: its collaborators, what the leader runs, readiness, and shutdown.

`bot.wiring.build(settings)` constructs one; `bot.web.app.create_web_app(rollbot)` serves it.
Nothing here is a global: tests and the demo build theirs the same way, pointing the real
clients at bot/sim servers.

Every replica serves HTTP and asks Slack at start whether it takes the bot token
(bot.runtime.slack_token; /readyz says what Slack answered). Only the holder of the leader
lease (bot.runtime.leader) runs the background work: the Socket Mode connection to Slack
(with slack.app_token: bot.slack.socket_mode; Slack spreads envelopes across every open
connection, so one replica holds it), the Rollout watch, the incident ticker, the
PagerDuty outbox, the scheduler, the replays of webhooks stored but never processed, and
the recovery of actions a dead process left running (Rollout commands and circuit-breaker
flips: bot.actions.tier1 and tier2). When the lease is lost, or at shutdown, all of it
stops, the Socket Mode connection closed; the next leader opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.actions import Responder
from bot.actions.gitops import GitOpsReverts
from bot.adapters.kubernetes import KubeRollouts
from bot.adapters.pagerduty import PagerDutyOnCall
from bot.adapters.prometheus import PrometheusMetrics
from bot.cards import Cards
from bot.core.ports import Chat
from bot.incidents import IncidentEngine
from bot.incidents.inbox import replay_alerts
from bot.paging import PagerDutyActions, PagingEngine
from bot.paging.inbox import replay_pagerduty
from bot.releases import ReleaseEngine
from bot.rollouts import RolloutWatch
from bot.runtime.inbox import InFlight
from bot.runtime.leader import Leadership
from bot.runtime.metrics import Metrics
from bot.runtime.scheduler import JobScheduler
from bot.runtime.slack_token import SlackTokenCheck
from bot.runtime.work import WorkQueue
from bot.settings import Settings
from bot.slack.socket_mode import SlackSocket
from bot.store import SqlStore
from bot.store.migrate import schema_problem
from bot.web.alertmanager import AlertmanagerReceiver
from bot.web.inbox import PoisonBin

__all__ = ["Rollbot"]

log = logging.getLogger(__name__)

# The leader's inbox replay: how often, and how old a pending row must be (its receiver
# registers it as in flight a moment after storing it).
REPLAY_EVERY = 2.0
REPLAY_AFTER = timedelta(seconds=3)


@dataclass
class Rollbot:
    settings: Settings
    store: SqlStore
    chat: Chat
    rollouts: KubeRollouts
    cards: Cards
    responder: Responder
    bolt: AsyncApp
    metrics: Metrics
    web_client: Any
    work: WorkQueue
    incidents: IncidentEngine
    releases: ReleaseEngine
    watch: RolloutWatch
    alert_receiver: AlertmanagerReceiver
    poison: PoisonBin
    # The inbox rows this process's receivers are processing (the replay leaves them alone).
    in_flight: InFlight = field(default_factory=InFlight)
    scheduler: JobScheduler | None = None
    paging: PagingEngine | None = None
    paging_actions: PagerDutyActions | None = None
    # Who is on call (PagerDuty), cached for authorisation; None: no API token.
    on_call: PagerDutyOnCall | None = None
    prometheus: PrometheusMetrics | None = None
    leadership: Leadership | None = None
    # auth.test at start (every replica: each has its token); None: not checked.
    slack_token: SlackTokenCheck | None = None
    # The Socket Mode connection, held by the leader (slack.app_token); None: HTTP only.
    slack_socket: SlackSocket | None = None
    # Tier 3 run by rollbot (services with gitops.provider and its token); None: none.
    gitops: GitOpsReverts | None = None
    # Called once the leader lease is lost (the server's way to exit and come back as a
    # standby); None: the process stays up, not ready, its loops stopped.
    on_leadership_lost: Callable[[], None] | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _scheduler_stopped: bool = False

    async def readiness_problems(self) -> list[str]:
        problems: list[str] = []
        try:
            revision = await self.store.schema_revision()
        except Exception as err:  # noqa: BLE001 - readiness reports, never raises
            # The probe's answer is public: name the failure, keep hosts and SQL in the log.
            log.warning("readiness: database check failed: %r", err)
            problems.append(f"database: {type(err).__name__}")
        else:
            schema = schema_problem(revision)
            if schema is not None:
                problems.append(schema)
        if self.slack_token is not None and self.slack_token.problem:
            problems.append(self.slack_token.problem)
        # Not the watch: an API-server blip must not take the only replica out of its
        # Service. Its health is `rollbot_watch_healthy`, alerted on by the shipped rules
        # (deploy/prometheus/rollbot-self.rules.yaml: RollbotWatchDown).
        if self.leadership is not None:
            standby = await self.leadership.problem()
            if standby is not None:
                problems.append(standby)
        return problems

    def leads(self) -> bool:
        """Whether this replica runs the loops and processes the webhooks it stores (it
        holds the leader lease, or has not asked yet: tests serving without the lifespan).
        A standby still answers Slack and the runbook pages (bot.web.app)."""
        return self.leadership is None or not self.leadership.fenced

    def on_call_changed(self) -> None:
        """PagerDuty told of a change (a signed webhook reached this replica): drop the
        on-call answers cached for authorisation, so the next click asks again."""
        if self.on_call is not None:
            self.on_call.forget()

    async def _start_background(self) -> None:
        """The leader's work: the Socket Mode connection, the watch, the incident ticker,
        the recovery of actions left running, the PagerDuty outbox, the scheduler and the
        replays of webhooks stored but never processed."""
        background = self._background
        if self.slack_socket is not None:
            # First: after a failover, Slack's requests wait for this connection, not for
            # the restore and the replays below.
            background.append(
                asyncio.create_task(self.slack_socket.run(), name="rollbot-slack-socket")
            )
        # The incidents a previous leader left, before the watch and the replays add to
        # them (a resolve replayed must find its incident).
        restored = await self.incidents.restore()
        if restored:
            log.info("restored %d incident(s) from the database", restored)
        background.append(asyncio.create_task(self.watch.run(), name="rollbot-watch"))
        # The cards other replicas acted on: rendered here, the one editor of their messages.
        background.append(asyncio.create_task(self.cards.run_marked(), name="rollbot-cards"))
        background.append(
            asyncio.create_task(self.incidents.run_ticker(), name="rollbot-incident-ticker")
        )
        recovery = self.responder.run_recovery(
            older_than=self.settings.kubernetes.action_recovery_seconds
        )
        background.append(asyncio.create_task(recovery, name="rollbot-action-recovery"))
        if self.paging is not None and self.paging_actions is not None:
            background.append(
                asyncio.create_task(self.paging.run_outbox(), name="rollbot-pagerduty-outbox")
            )
        if self.gitops is not None:
            background.append(asyncio.create_task(self.gitops.run(), name="rollbot-gitops"))
        if self.scheduler is not None:
            await self.scheduler.start(self.releases.run_job)
            background.append(
                asyncio.create_task(self.releases.run_reconciler(), name="rollbot-reconciler")
            )
        # Webhooks stored but never processed (the process died after its answer), now;
        # then every few seconds those whose processing failed to finish.
        await self._replay(min_age=timedelta(0))
        background.append(asyncio.create_task(self._keep_replaying(), name="rollbot-inbox"))

    async def _replay(self, *, min_age: timedelta) -> None:
        """One round of the inbox replay (`bot.runtime.inbox`), both sources."""
        kw: dict[str, Any] = {"store": self.store, "skip": self.in_flight, "min_age": min_age}
        if self.paging is not None and self.paging_actions is not None:
            replayed_pd = await replay_pagerduty(
                on_webhook=self.paging.on_webhook,
                on_workflow=self.paging_actions.on_workflow,
                **kw,
            )
            if replayed_pd:
                log.info("replayed %d stored PagerDuty webhook(s)", replayed_pd)
        replayed = await replay_alerts(on_alerts=self.incidents.on_alerts, **kw)
        if replayed:
            log.info("replayed %d stored Alertmanager webhook(s)", replayed)

    async def _keep_replaying(self) -> None:
        """Every `REPLAY_EVERY`, the rows older than `REPLAY_AFTER` not in flight here: a
        webhook accepted whose processing did not finish (the database went away) is
        delivered within seconds, not at the next restart."""
        while True:
            await asyncio.sleep(REPLAY_EVERY)
            try:
                await self._replay(min_age=REPLAY_AFTER)
            except Exception:
                log.warning("inbox replay failed; retrying", exc_info=True)

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

    async def _lead(self, leadership: Leadership, starting: asyncio.Task[None] | None) -> None:
        """Standby until the lease is ours (unless `starting`: taken before serving, the
        leader's work being started); then act until it is lost, and stop.

        The lease is renewed from the moment it is taken, alongside the start of the
        leader's work: that start (the incidents restored, the backlog of stored webhooks
        replayed, each with its Slack calls) may outlast the lease, and a lease not renewed
        meanwhile is taken by a standby while this replica goes on (then finds it lost, and
        exits). A start that fails stops the renewals (the lease expires, a standby takes
        over), as it did before they ran alongside."""
        if starting is None:
            held = await leadership.holder_now()
            log.info("standby (%s): %s leads", leadership.holder, held or "nobody yet")
            await leadership.wait_until_leader()
            self.metrics.leader.set(1)
            starting = asyncio.create_task(self._start_background(), name="rollbot-start")
        keeping = asyncio.create_task(leadership.keep(), name="rollbot-lease")
        try:
            await asyncio.wait({starting, keeping}, return_when=asyncio.FIRST_COMPLETED)
            if not keeping.done():
                starting.result()  # a start that failed raises here
                await keeping
        finally:
            for task in (starting, keeping):
                task.cancel()
            await asyncio.gather(starting, keeping, return_exceptions=True)
        self.metrics.leader.set(0)
        log.critical("lost the leader lease: stopping the watch, scheduler and outbox")
        await self._stop_background()
        await self._stop_scheduler()
        if self.on_leadership_lost is not None:
            self.on_leadership_lost()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        if self.slack_token is not None:
            # Before the first request: /readyz says from the start whether Slack takes
            # the token (out of reach: said too, and asked again in the background).
            await self.slack_token.start()
        leadership = self.leadership
        leading: asyncio.Task[None] | None = None
        try:
            # One attempt before serving: a lone replica (or the first) leads from its
            # first request on, as before there were standbys; its lease is renewed while
            # its work starts (`_lead`).
            if leadership is None:
                self.metrics.leader.set(1)
                await self._start_background()
            elif await leadership.try_acquire():
                self.metrics.leader.set(1)
                starting = asyncio.create_task(self._start_background(), name="rollbot-start")
                leading = asyncio.create_task(
                    self._lead(leadership, starting), name="rollbot-leader"
                )
                await asyncio.wait({starting})
                if not starting.cancelled():  # cancelled: the lease was lost meanwhile
                    starting.result()  # a start that failed fails the lifespan, as before
            else:
                leading = asyncio.create_task(self._lead(leadership, None), name="rollbot-leader")
            yield
        finally:
            if leading is not None:
                leading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leading
            await self._stop_background()
            await self.alert_receiver.drain(timeout=10)
            await self.watch.close()
            await self.aclose()

    async def aclose(self) -> None:
        if self.slack_token is not None:
            await self.slack_token.close()
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
