"""`build(settings)`: every collaborator constructed once, in dependency order, each handed
what it needs at construction. Nothing is attached afterwards, so no two collaborators hold
each other:

    metrics                                             every adapter times its calls there
    Kubernetes client, flags, on-call                   what fails on the configuration
    store, chat, rollouts                               (adapters and machinery)
    cards                                               the card per Rollout revision
    incident book                                       incidents by card key (read by many)
    PagerDuty engine (book)                             pages and notes out, webhooks in
    incidents (book, told: PagerDuty)                   signals in, incidents and cards out
    responder (told: PagerDuty)                         every action, every tier
    PagerDuty actions (engine, responder)               ack from Slack, workflow buttons
    releases, scheduler                                 release tickets and their clocks
    watch (incidents, cards, releases, responder)       the leader's Rollout watch
    Slack (Bolt + listeners, Socket Mode link),         the edges
    Alertmanager receiver
    Slack token check                                   auth.test at start, for /readyz
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.actions import Responder
from bot.actions.gitops import GitOpsReverts
from bot.adapters.git import GitCli
from bot.adapters.github import GitHubHost
from bot.adapters.gitlab import GitLabHost
from bot.adapters.kubernetes import WATCHED_KINDS, KubeRollouts
from bot.adapters.prometheus import PrometheusMetrics
from bot.adapters.slack import SlackChat, make_web_client
from bot.cards import Cards, SlackPace
from bot.cards.posting import OnceChat
from bot.core import mrkdwn
from bot.core.errors import RollbotError
from bot.core.gitops import CodeHost, GitRepos, RevertCase
from bot.core.model import RolloutState
from bot.core.ports import Chat
from bot.incidents import IncidentBook, IncidentEngine, IncidentListener
from bot.paging import PagerDutyActions, PagingEngine
from bot.rollouts import RolloutWatch, watched_namespaces
from bot.runbooks.links import send_runbook_link, slack_link_issuer
from bot.runtime.inbox import InFlight
from bot.runtime.leader import Leadership
from bot.runtime.metrics import Metrics, OutboundCalls
from bot.runtime.scheduler import Clock, JobScheduler, SystemClock
from bot.runtime.slack_token import SlackTokenCheck
from bot.runtime.work import WorkQueue
from bot.settings import Settings
from bot.slack.app import create_bolt_app
from bot.slack.listeners import Deps
from bot.slack.socket_mode import SlackSocket
from bot.slack.verified import REPLAY_MEMORY
from bot.store import SqlStore, open_store
from bot.web.alertmanager import AlertmanagerReceiver
from bot.web.inbox import PoisonBin
from bot.wiring.factories import (
    make_flags,
    make_kube_client,
    make_on_call,
    make_paging,
    make_release_engine,
    make_rollouts,
)
from bot.wiring.rollbot import Rollbot

__all__ = ["build"]

Teller = Callable[[str], Awaitable[None]]


async def build(
    settings: Settings, *, rollouts: KubeRollouts | None = None, clock: Clock | None = None
) -> Rollbot:
    slack = settings.slack
    if slack.bot_token is None or (slack.signing_secret is None and slack.app_token is None):
        raise RollbotError(
            "Slack credentials missing: set ROLLBOT_SLACK__BOT_TOKEN, and "
            "ROLLBOT_SLACK__SIGNING_SECRET (HTTP) or ROLLBOT_SLACK__APP_TOKEN (Socket Mode), "
            "or their *_FILE variants."
        )
    # Whatever can fail on the configuration comes before the database is opened (SQLite
    # creates its file): a process that cannot start has written nothing.
    metrics = Metrics()
    kube_client = make_kube_client(settings) if rollouts is None else None
    flags = make_flags(settings, observer=_observer(metrics, "flags", settings.flags.provider))
    pd_observer = _observer(metrics, "pagerduty", settings.pagerduty.api_token or _routed(settings))
    on_call = make_on_call(settings, observer=pd_observer)
    try:
        store = await open_store(
            settings.database.url, busy_timeout=settings.database.busy_timeout_seconds
        )
    except BaseException:
        if kube_client is not None:
            kube_client.close()
        raise
    web_client = make_web_client(slack.bot_token.get_secret_value(), slack.api_url)
    slack_chat = SlackChat(web_client, observer=metrics.outbound("slack"))
    # Every post is made at most once: a lost answer is looked for before a second attempt.
    chat = OnceChat(slack_chat)
    kube = settings.kubernetes
    if rollouts is None:
        rollouts = make_rollouts(
            settings, store, api_client=kube_client, observer=metrics.outbound("kubernetes")
        )
    metrics.watch_outbox(store.outbox_backlog)
    clock = clock or SystemClock()
    # Who leads: the loops, the webhooks' processing and the cards' edits are its own.
    leadership = Leadership(store, ttl=settings.server.leader_lease_seconds)
    cards = Cards(
        chat=chat,
        store=store,
        catalog=settings.services,
        public_url=settings.server.public_url,
        circuit_available=flags is not None,
        circuit_environment=settings.flags.environment if flags is not None else None,
        leads=lambda: not leadership.fenced,
        read_state=functools.partial(_read_state, rollouts, settings),
        slack_pace=SlackPace(),  # Slack's rate limits, kept here: a storm meets no 429
        owner=leadership.holder,  # whose thread lines are waiting for Slack
        line_lease=settings.slack.line_lease_seconds,
    )
    prometheus = (
        PrometheusMetrics(
            base_url=settings.prometheus.url,
            timeout=settings.prometheus.query_timeout_seconds,
            graph_url=settings.prometheus.graph_base_url,
            observer=metrics.outbound("prometheus"),
        )
        if settings.prometheus.url
        else None
    )
    book = IncidentBook()
    pager = make_paging(settings, observer=pd_observer)
    paging = (
        PagingEngine(
            settings=settings,
            store=store,
            chat=chat,
            cards=cards,
            paging=pager,
            incidents=book,
            link_issuer=functools.partial(send_runbook_link, settings, chat),
            metrics=metrics,
            clock=clock,
        )
        if pager is not None
        else None
    )
    told: list[IncidentListener] = [paging.on_incident] if paging is not None else []
    incidents = IncidentEngine(
        settings=settings,
        rollouts=rollouts,
        cards=cards,
        chat=chat,
        prometheus=prometheus,
        book=book,
        store=store,
        listeners=told,
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
        listeners=[paging.after_action] if paging is not None else [],
    )
    paging_actions = (
        PagerDutyActions(engine=paging, responder=responder) if paging is not None else None
    )
    gitops = make_gitops(
        settings, responder=responder, store=store, rollouts=rollouts, metrics=metrics
    )
    scheduler = (
        JobScheduler(
            database_url=settings.database.url,
            store=store,
            clock=clock,
            lease_ttl=settings.releases.lease_ttl_seconds,
            renew_every=settings.releases.lease_ttl_seconds / 3,
            busy_timeout=settings.database.busy_timeout_seconds,
            on_lag=metrics.scheduler_lag.observe,
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
        jira_observer=_observer(metrics, "jira", settings.jira.url),
    )
    watch = RolloutWatch(
        namespaces=watched_namespaces(
            settings.kubernetes.namespaces or [],
            (s.namespace for s in settings.services.values()),
        ),
        rollouts=rollouts,
        cards=cards,
        incidents=incidents,
        releases=releases,
        card_store=store,
        circuits=responder,
        metrics=metrics,
    )
    rollouts.on_watch_error = watch.on_error
    rollouts.on_synced = metrics.watch_sync_seconds.set
    metrics.watch_cache(rollouts.cached_count, WATCHED_KINDS)
    work = WorkQueue(workers=settings.server.workers)
    metrics.watch_work_queue(lambda: work.pending)
    bolt = create_bolt_app(
        # Socket Mode only: no signing secret, and /slack/events is not served (bot.web.app).
        signing_secret=slack.signing_secret.get_secret_value() if slack.signing_secret else "",
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
            acknowledge=paging_actions.acknowledge if paging_actions is not None else None,
            gitops=gitops,
        ),
    )
    slack_socket = (
        SlackSocket(
            bolt=bolt,
            app_token=slack.app_token.get_secret_value(),
            on_open=lambda is_open: metrics.slack_socket_open.set(1 if is_open else 0),
        )
        if slack.app_token is not None
        else None
    )
    poison = PoisonBin(store=store, metrics=metrics, tell=_fallback_teller(settings, chat))
    token = settings.alertmanager.bearer_token
    in_flight = InFlight()  # the inbox rows being processed here (the receivers register)
    alert_receiver = AlertmanagerReceiver(
        token=token.get_secret_value() if token is not None else None,
        store=store,
        on_alerts=incidents.on_alerts,
        metrics=metrics,
        matchers=settings.alert_matchers(),
        poison=poison,
        in_flight=in_flight,
        processes=lambda: not leadership.fenced,  # a standby stores, the leader processes
    )
    return Rollbot(
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
        watch=watch,
        alert_receiver=alert_receiver,
        poison=poison,
        in_flight=in_flight,
        scheduler=scheduler,
        paging=paging,
        paging_actions=paging_actions,
        on_call=on_call,
        prometheus=prometheus,
        leadership=leadership,
        slack_token=SlackTokenCheck(slack_chat.auth_test),
        slack_socket=slack_socket,
        gitops=gitops,
    )


#: The PagerDuty incident's link as the card's pager line has it (`bot.paging.engine`).
_PAGER_LINK = re.compile(r"<(https?://[^|>]+)\|PagerDuty incident>")


def make_gitops(
    settings: Settings,
    *,
    responder: Responder,
    store: SqlStore,
    rollouts: KubeRollouts,
    metrics: Metrics | None = None,
) -> GitOpsReverts | None:
    """Tier 3 run by rollbot, for the services whose `gitops.provider` is set and whose
    provider has a token (None: no such service)."""
    gitops = settings.gitops
    tokens = {"github": gitops.github_token, "gitlab": gitops.gitlab_token}
    run = {
        name: cfg.gitops
        for name, cfg in settings.services.items()
        if cfg.gitops.provider is not None and tokens[cfg.gitops.provider] is not None
    }
    if not run:
        return None
    hosts: dict[str, CodeHost] = {}
    for cfg in run.values():
        secret = tokens[str(cfg.provider)]
        assert secret is not None
        if cfg.provider == "github" and "github" not in hosts:
            hosts["github"] = GitHubHost(secret.get_secret_value, cfg.host_api)
        elif cfg.provider == "gitlab" and "gitlab" not in hosts:
            hosts["gitlab"] = GitLabHost(secret.get_secret_value, cfg.host_api)
    # One token per provider: the git adapter sends each repository its provider's.
    by_url = {str(cfg.repo): tokens[str(cfg.provider)] for cfg in run.values()}
    workdir = Path(gitops.workdir) if gitops.workdir else Path(tempfile.gettempdir())
    repos: dict[str, GitRepos] = {
        provider: GitCli(
            secret.get_secret_value,
            workdir,
            allowed=[url for url, s in by_url.items() if s is secret],
            timeout=gitops.git_timeout_seconds,
        )
        for provider, secret in tokens.items()
        if secret is not None
    }
    public = settings.server.public_url
    team = settings.slack.team_url

    async def links(case: RevertCase) -> dict[str, str]:
        """The card, the PagerDuty incident (as the card links it) and the runbook."""
        found: dict[str, str] = {}
        card = await store.get_card(case.card_key)
        if team and card is not None and card.ts:
            found["Slack card"] = f"{team}/archives/{card.channel}/p{card.ts.replace('.', '')}"
        pager = _PAGER_LINK.search(card.pager or "") if card is not None else None
        if pager is not None:
            found["PagerDuty incident"] = mrkdwn.unescape(pager.group(1))
        if public:
            found["Runbook"] = f"{public}/runbooks/{case.service}"
        return found

    return GitOpsReverts(
        responder.pipeline,
        store=store,
        rollouts=rollouts,
        repos=repos,
        hosts=hosts,
        settings=gitops,
        applications=rollouts,
        links=links,
        metrics=metrics,
    )


def _observer(metrics: Metrics, service: str, configured: object) -> OutboundCalls | None:
    """`service`'s call observer when it is `configured` (so /metrics has series for the
    services rollbot talks to, and none for the others)."""
    return metrics.outbound(service) if configured else None


def _routed(settings: Settings) -> bool:
    """Whether any service pages (has a PagerDuty routing key)."""
    return any(s.pagerduty.routing_key is not None for s in settings.services.values())


async def _read_state(rollouts: KubeRollouts, settings: Settings, service: str) -> RolloutState:
    """The service's Rollout as the API server has it now (a leader taking over a card)."""
    cfg = settings.services[service]
    return await rollouts.get_state(cfg.namespace, cfg.rollout)


def _fallback_teller(settings: Settings, chat: Chat) -> Teller | None:
    """Posts an operator's notice in ``slack.fallback_channel`` (None without one)."""
    channel = settings.slack.fallback_channel
    if not channel:
        return None

    async def tell(text: str) -> None:
        await chat.post(channel, text=text)

    return tell
