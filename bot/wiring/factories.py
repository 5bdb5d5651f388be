"""The adapters and engines made from settings, each or None when its settings are absent.

`build` (bot.wiring.build) calls these; so does `rollbot release …`, which needs only the
release engine (`build_release_engine`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.adapters.calls import CallObserver
from bot.adapters.kubernetes import KubeRollouts
from bot.adapters.pagerduty import PagerDutyOnCall
from bot.adapters.slack import SlackChat, make_web_client
from bot.cards.posting import OnceChat
from bot.core.errors import RollbotError, Unreachable
from bot.core.ports import Chat, Flags, Tickets
from bot.releases import ReleaseEngine
from bot.runtime.scheduler import Clock, JobScheduler, SystemClock
from bot.settings import Settings
from bot.store import SqlStore, open_store

__all__ = [
    "build_release_engine",
    "make_flags",
    "make_kube_client",
    "make_on_call",
    "make_paging",
    "make_release_engine",
    "make_rollouts",
    "make_tickets",
]


def make_flags(settings: Settings, *, observer: CallObserver | None = None) -> Flags | None:
    """The configured flag provider's adapter, or None (Tier 2 then shows manual steps);
    `observer` times its calls (as every factory's here: `bot.adapters.calls`)."""
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
            observer=observer,
        )
    from bot.adapters.launchdarkly import LaunchDarklyFlags

    return LaunchDarklyFlags(
        base_url=cfg.url,
        api_token=cfg.api_token.get_secret_value(),
        project=cfg.project,
        environment=cfg.environment,
        observer=observer,
    )


def make_on_call(
    settings: Settings, *, observer: CallObserver | None = None
) -> PagerDutyOnCall | None:
    """PagerDuty on-call lookup, or None without an API token (owners-group policy only)."""
    pd = settings.pagerduty
    if pd.api_token is None:
        return None
    return PagerDutyOnCall(
        api_token=pd.api_token.get_secret_value(),
        base_url=pd.api_url,
        ca_file=pd.ca_file,
        ttl=pd.on_call_cache_seconds,
        observer=observer,
    )


def make_paging(settings: Settings, *, observer: CallObserver | None = None) -> Any:
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
        observer=observer,
    )


def make_tickets(settings: Settings, *, observer: CallObserver | None = None) -> Tickets | None:
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
        observer=observer,
    )


def make_release_engine(
    settings: Settings,
    *,
    store: SqlStore,
    chat: Chat,
    rollouts: Any,
    clock: Clock,
    scheduler: JobScheduler | None,
    flags: Flags | None = None,
    on_call: PagerDutyOnCall | None = None,
    jira_observer: CallObserver | None = None,
) -> ReleaseEngine:
    return ReleaseEngine(
        settings=settings,
        store=store,
        chat=chat,
        rollouts=rollouts,
        tickets=make_tickets(settings, observer=jira_observer),
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

    async def cached_state(self, namespace: str, name: str) -> Any:
        raise Unreachable("Kubernetes", self.reason)

    async def analysis_templates(self, namespace: str, name: str) -> dict[str, bool]:
        raise Unreachable("Kubernetes", self.reason)

    def close(self) -> None:
        pass


def make_kube_client(settings: Settings) -> Any:
    """The Kubernetes API client from the kubeconfig (or the in-cluster service account);
    raises PermanentError naming what is missing. Opens nothing: `build` makes it before the
    database, so a process that cannot reach a cluster stops having written nothing."""
    kube = settings.kubernetes
    return KubeRollouts.load_client(kubeconfig=kube.kubeconfig, context=kube.context)


def make_rollouts(
    settings: Settings,
    store: SqlStore,
    *,
    api_client: Any = None,
    observer: CallObserver | None = None,
) -> KubeRollouts:
    """The Kubernetes adapter over `api_client` (default: `make_kube_client`)."""
    kube = settings.kubernetes
    return KubeRollouts(
        api_client=api_client if api_client is not None else make_kube_client(settings),
        request_timeout=kube.request_timeout_seconds,
        watch_timeout_seconds=int(kube.watch_timeout_seconds),
        cursor_store=store,
        observer=observer,
    )


async def build_release_engine(
    settings: Settings, *, clock: Clock | None = None
) -> tuple[ReleaseEngine, Callable[[], Awaitable[None]]]:
    """Just what `rollbot release …` needs, without HTTP, watch or scheduler. Returns the
    engine and a coroutine function that closes what it opened."""
    slack = settings.slack
    if slack.bot_token is None:
        raise RollbotError("Slack credentials missing: set ROLLBOT_SLACK__BOT_TOKEN.")
    store = await open_store(
        settings.database.url, busy_timeout=settings.database.busy_timeout_seconds
    )
    web_client = make_web_client(slack.bot_token.get_secret_value(), slack.api_url)
    rollouts: KubeRollouts | _NoCluster
    try:
        rollouts = make_rollouts(settings, store)
    except RollbotError as err:
        # A CI job often has no cluster access: the release still starts; the checklist
        # says the cluster was not checked, and the bot's watch binds the revision.
        rollouts = _NoCluster(err.message)
    engine = make_release_engine(
        settings,
        store=store,
        chat=OnceChat(SlackChat(web_client)),
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
