"""HTTP surface: Slack, the Alertmanager and PagerDuty webhooks, the runbook pages, health,
readiness and metrics. Each route gets the narrow part of rollbot it needs. `/slack/events`
is served when `slack.signing_secret` is set; Socket Mode (`slack.app_token`) is no route:
the leader's connection out to Slack (bot.slack.socket_mode).

Every request meets `bot.web.observe` first (its id in the log lines, its duration by
route in /metrics), then `bot.web.guard` (body limits and deadlines).

Two apps: `create_web_app`, the public endpoints (with the probes and `/metrics` too, unless
told they have a listener of their own), and `create_internal_app`, the probes and
`/metrics` alone, which `rollbot serve` puts on `server.internal_port` (bot.web.server's
`serve_beside`) so that only Prometheus and the kubelet reach them.

Every replica answers every route (issue 15): Slack requests and the runbook pages are
executed where they arrive (an action's claim is exactly once across replicas, in the
database); a webhook is stored by whichever replica it reaches and processed by the leader
(at once when it arrived there, else by its replay). `/readyz` says whether this replica
can serve (its database answers at its schema, Slack takes its token) and, apart, whether
it leads: a standby is Ready, so a rolling update of two replicas completes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.runtime.inbox import InFlight
from bot.runtime.metrics import Metrics
from bot.web.alertmanager import PATH as ALERTMANAGER_PATH
from bot.web.alertmanager import AlertmanagerReceiver
from bot.web.guard import BODY_TIMEOUT, RequestGuard
from bot.web.inbox import PoisonBin
from bot.web.observe import ObservedRequests
from bot.web.pagerduty import pagerduty_routes
from bot.web.runbook_deps import PageResponder, RunbookDeps
from bot.web.runbooks import runbook_routes
from bot.web.slack import slack_route

if TYPE_CHECKING:
    from bot.core.ports import Chat
    from bot.paging import PagerDutyActions, PagingEngine
    from bot.settings import Settings


class Served(Protocol):
    """What the web app serves (`bot.wiring.Rollbot` is one): each route gets only its part."""

    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def bolt(self) -> Any: ...

    @property
    def store(
        self,
    ) -> Any: ...  # bot.store.SqlStore: the inbox, the duplicate records, the link notices

    @property
    def chat(self) -> Chat: ...

    @property
    def responder(self) -> PageResponder: ...

    @property
    def alert_receiver(self) -> AlertmanagerReceiver: ...

    @property
    def poison(self) -> PoisonBin: ...

    @property
    def in_flight(self) -> InFlight: ...

    @property
    def paging(self) -> PagingEngine | None: ...

    @property
    def paging_actions(self) -> PagerDutyActions | None: ...

    async def readiness_problems(self) -> list[str]: ...

    def leads(self) -> bool: ...

    def on_call_changed(self) -> None:
        """PagerDuty told of a change (a signed webhook): drop the cached on-call answers."""
        ...

    def lifespan(self, app: Any) -> AbstractAsyncContextManager[None]: ...


def _count_refused(metrics: Metrics) -> Callable[[str, int], None]:
    def count(path: str, status: int) -> None:
        metrics.http_requests.labels(path, str(status)).inc()

    return count


class Probed(Protocol):
    """What the probes and `/metrics` read (a `Served` is one)."""

    @property
    def metrics(self) -> Metrics: ...

    async def readiness_problems(self) -> list[str]: ...

    def leads(self) -> bool: ...


#: The internal endpoints: the kubelet's probes and Prometheus's scrape.
INTERNAL_PATHS = ("/healthz", "/readyz", "/metrics")


def internal_routes(rollbot: Probed) -> list[BaseRoute]:
    """`/healthz` (the process answers), `/readyz` (it can serve: 503 with the problems,
    and whether it leads) and `/metrics` (Prometheus's text format)."""
    metrics = rollbot.metrics

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problems = await rollbot.readiness_problems()
        status = 503 if problems else 200
        body = {"ready": not problems, "problems": problems, "leader": rollbot.leads()}
        return JSONResponse(body, status_code=status)

    async def metrics_endpoint(_: Request) -> Response:
        await metrics.refresh()  # what is read at scrape time: the outbox's backlog
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    handlers = dict(zip(INTERNAL_PATHS, (healthz, readyz, metrics_endpoint), strict=True))
    return [Route(path, handler, methods=["GET"]) for path, handler in handlers.items()]


def create_internal_app(rollbot: Probed, *, body_timeout: float = BODY_TIMEOUT) -> Starlette:
    """The internal listener's app: `internal_routes` alone, no lifespan (the public app's
    runs the background work); anything else is 404."""
    routes = internal_routes(rollbot)
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(ObservedRequests, metrics=rollbot.metrics, routes=routes),
            Middleware(
                RequestGuard,
                body_timeout=body_timeout,
                on_refused=_count_refused(rollbot.metrics),
            ),
        ],
    )


def create_web_app(
    rollbot: Served,
    *,
    run_background: bool = True,
    body_timeout: float = BODY_TIMEOUT,
    with_internal: bool = True,
) -> Starlette:
    """The ASGI app. With `run_background`, its lifespan runs the leader's background work
    (the watch, the ticker, the outbox); without it, only the routes. Without
    `with_internal`, the probes and `/metrics` are not among its routes (404): they are
    served by `create_internal_app` on a port of their own."""
    metrics = rollbot.metrics
    secret = rollbot.settings.slack.signing_secret
    # Without a signing secret (Socket Mode only: build() takes the app token alone), nothing
    # could prove a request to /slack/events came from Slack: the route is not served (404).
    slack: list[BaseRoute] = (
        [slack_route(bolt=rollbot.bolt, signing_secret=secret.get_secret_value(), metrics=metrics)]
        if secret is not None
        else []
    )

    pagerduty: list[BaseRoute] = []
    if rollbot.paging is not None and rollbot.paging_actions is not None:
        pagerduty = pagerduty_routes(
            settings=rollbot.settings.pagerduty,
            store=rollbot.store,
            metrics=metrics,
            on_webhook=rollbot.paging.on_webhook,
            on_workflow=rollbot.paging_actions.on_workflow,
            poison=rollbot.poison,
            in_flight=rollbot.in_flight,
            processes=rollbot.leads,
            on_signed=rollbot.on_call_changed,
        )
    runbooks = runbook_routes(
        RunbookDeps(
            settings=rollbot.settings,
            responder=rollbot.responder,
            incidents=rollbot.store,  # every replica reads the incidents from the database
            store=rollbot.store,
            chat=rollbot.chat,
            metrics=metrics,
        )
    )
    routes = [
        *slack,
        Route(ALERTMANAGER_PATH, rollbot.alert_receiver.handle, methods=["POST"]),
        *(internal_routes(rollbot) if with_internal else []),
        *pagerduty,
        *runbooks,
    ]
    return Starlette(
        routes=routes,
        lifespan=rollbot.lifespan if run_background else None,
        middleware=[
            Middleware(ObservedRequests, metrics=metrics, routes=routes),
            Middleware(RequestGuard, body_timeout=body_timeout, on_refused=_count_refused(metrics)),
        ],
    )
