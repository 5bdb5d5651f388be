"""HTTP surface: Slack, the Alertmanager webhook, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.runtime.metrics import Metrics
from bot.web.alertmanager import alertmanager_route
from bot.web.guard import BODY_TIMEOUT, RequestGuard
from bot.web.inbox import PoisonBin
from bot.web.pagerduty import pagerduty_routes
from bot.web.runbooks import runbook_routes
from bot.web.slack import slack_route

if TYPE_CHECKING:
    from bot.wiring import Rollbot


#: What a standby still answers: it is alive, it says why it is not ready, its metrics.
STANDBY_OPEN = frozenset({"/healthz", "/readyz", "/metrics"})


class StandbyGate:
    """A standby (or a leader that lost its lease) answers everything else 503 with
    `Retry-After`, before reading the body: nothing is stored or executed, and Slack,
    Alertmanager and PagerDuty deliver again (to the leader, once the Service routes there).
    """

    def __init__(self, app: ASGIApp, rollbot: Rollbot) -> None:
        self.app = app
        self.rollbot = rollbot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in STANDBY_OPEN and self.rollbot.fenced():
            self.rollbot.metrics.http_requests.labels("standby", "503").inc()
            response = JSONResponse(
                {"error": "rollbot standby: another replica leads; try again there"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _count_refused(metrics: Metrics) -> Callable[[str, int], None]:
    def count(path: str, status: int) -> None:
        metrics.http_requests.labels(path, str(status)).inc()

    return count


def _fallback_teller(rollbot: Rollbot) -> Callable[[str], Awaitable[None]] | None:
    """Posts an operator's notice in ``slack.fallback_channel`` (None without one)."""
    channel = rollbot.settings.slack.fallback_channel
    if not channel:
        return None

    async def tell(text: str) -> None:
        await rollbot.chat.post(channel, text=text)

    return tell


def create_web_app(
    rollbot: Rollbot, *, run_background: bool = True, body_timeout: float = BODY_TIMEOUT
) -> Starlette:
    """The ASGI app. With `run_background`, its lifespan runs the watch (the leader's job)."""
    metrics = rollbot.metrics
    secret = rollbot.settings.slack.signing_secret
    assert secret is not None  # build() refuses to start without it
    slack = slack_route(
        bolt=rollbot.bolt,
        signing_secret=secret.get_secret_value(),
        metrics=metrics,
    )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problems = await rollbot.readiness_problems()
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    poison = PoisonBin(store=rollbot.store, metrics=metrics, tell=_fallback_teller(rollbot))
    token = rollbot.settings.alertmanager.bearer_token
    alerts = alertmanager_route(
        token=token.get_secret_value() if token is not None else None,
        store=rollbot.store,
        on_alerts=rollbot.incidents.on_alerts,
        metrics=metrics,
        matchers=rollbot.settings.alert_matchers(),
        poison=poison,
    )
    rollbot.alert_receiver = alerts.endpoint.__self__  # type: ignore[attr-defined]

    return Starlette(
        routes=[
            slack,
            alerts,
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *pagerduty_routes(rollbot, poison=poison),
            *runbook_routes(rollbot),
        ],
        lifespan=rollbot.lifespan if run_background else None,
        middleware=[
            Middleware(RequestGuard, body_timeout=body_timeout, on_refused=_count_refused(metrics)),
            Middleware(StandbyGate, rollbot=rollbot),
        ],
    )
