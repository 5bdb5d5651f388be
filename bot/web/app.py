"""HTTP surface: Slack, the Alertmanager webhook, health, readiness and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.web.alertmanager import alertmanager_route
from bot.web.pagerduty import pagerduty_routes
from bot.web.runbooks import runbook_routes

if TYPE_CHECKING:
    from bot.app import Rollbot


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


def create_web_app(rollbot: Rollbot, *, run_background: bool = True) -> Starlette:
    """The ASGI app. With `run_background`, its lifespan runs the watch (the leader's job)."""
    handler = AsyncSlackRequestHandler(rollbot.bolt)
    metrics = rollbot.metrics

    async def slack_events(request: Request) -> Response:
        response = await handler.handle(request)
        metrics.http_requests.labels("/slack/events", str(response.status_code)).inc()
        return response

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        problems = await rollbot.readiness_problems()
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    token = rollbot.settings.alertmanager.bearer_token
    alerts = alertmanager_route(
        token=token.get_secret_value() if token is not None else None,
        store=rollbot.store,
        on_alerts=rollbot.incidents.on_alerts,
        metrics=metrics,
        matchers=rollbot.settings.alert_matchers(),
    )
    rollbot.alert_receiver = alerts.endpoint.__self__  # type: ignore[attr-defined]

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            alerts,
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *pagerduty_routes(rollbot),
            *runbook_routes(rollbot),
        ],
        lifespan=rollbot.lifespan if run_background else None,
        middleware=[Middleware(StandbyGate, rollbot=rollbot)],
    )
