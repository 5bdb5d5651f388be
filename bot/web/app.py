"""HTTP surface: Slack, the Alertmanager webhook, health, readiness and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.web.alertmanager import alertmanager_route
from bot.web.pagerduty import pagerduty_routes
from bot.web.runbooks import runbook_routes

if TYPE_CHECKING:
    from bot.app import Rollbot


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
    )
