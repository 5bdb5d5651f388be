"""POST /webhooks/pagerduty: PagerDuty v3 webhooks and Incident Workflow actions.

- Authentic or nothing: a v3 delivery carries ``X-PagerDuty-Signature`` (``v1=`` HMAC-SHA256
  of the raw body; several during a secret rotation), checked in constant time against
  ``pagerduty.webhook_secret`` (comma-separated: old and new). An Incident Workflow's
  "Send a Webhook POST" step cannot compute a signature, so it sends a static header,
  ``Authorization: Bearer <pagerduty.workflow_secret>``. Anything else: 401, nothing stored
  or done, counted in /metrics. Not configured at all: 503.
- Exactly once: a delivery is known by ``X-Webhook-Id`` (PagerDuty re-sends the same id);
  the first one is stored (inbox) before the 202, later copies get 200 "duplicate".
- Answered quickly, processed after: the body is handled in a background task; bodies
  stored but never processed (the process died) are replayed at start.
- Unknown event types are accepted and ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.core.signatures import split_secrets, verify_pagerduty
from bot.web.inbox import replay_inbox

if TYPE_CHECKING:
    from bot.app import Rollbot

log = logging.getLogger(__name__)

SOURCE = "pagerduty"
PATH = "/webhooks/pagerduty"
MAX_BODY = 1_000_000


def _bearer_ok(header: str | None, secret: str | None) -> bool:
    if not secret or not header:
        return False
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), secret.encode()
    )


def pagerduty_routes(rollbot: Rollbot) -> list[BaseRoute]:
    """The PagerDuty webhook's route (none without a paging engine)."""
    paging = getattr(rollbot, "paging", None)
    if paging is None:
        return []
    settings = rollbot.settings.pagerduty
    secrets = split_secrets(
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    )
    workflow = (
        settings.workflow_secret.get_secret_value()
        if settings.workflow_secret
        else (secrets[0] if secrets else None)
    )
    metrics = rollbot.metrics
    store = rollbot.store
    tasks: set[asyncio.Task[None]] = set()

    def answer(status: int, body: dict[str, Any]) -> Response:
        metrics.http_requests.labels(PATH, str(status)).inc()
        return JSONResponse(body, status_code=status)

    async def process(row: int, payload: dict[str, Any]) -> None:
        error: str | None = None
        try:
            await paging.on_webhook(payload)
        except Exception as exc:  # boundary: recorded in the inbox row
            log.exception("PagerDuty delivery %s failed", row)
            error = f"{type(exc).__name__}: {exc}"
        await store.mark_webhook_processed(row, error=error)

    async def receive(request: Request) -> Response:
        if not secrets and not workflow:
            return answer(503, {"error": "PagerDuty webhooks are not configured on rollbot"})
        body = await request.body()
        if len(body) > MAX_BODY:
            return answer(413, {"error": f"body over {MAX_BODY} bytes"})
        signed = verify_pagerduty(body, request.headers.get("x-pagerduty-signature"), secrets)
        if not signed and not _bearer_ok(request.headers.get("authorization"), workflow):
            log.warning("PagerDuty webhook refused: bad or missing signature")
            return answer(401, {"error": "bad or missing signature"})
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return answer(400, {"error": f"body is not JSON: {exc}"})
        if not isinstance(payload, dict):
            return answer(400, {"error": "body must be a JSON object"})
        delivery = request.headers.get("x-webhook-id") or hashlib.sha256(body).hexdigest()
        seen = f"pd-webhook:{delivery}"
        if not await store.mark_notice_sent(seen, release_id=SOURCE):
            return answer(200, {"status": "duplicate", "id": delivery})
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("x-webhook-id", "x-webhook-subscription", "user-agent")
        }
        try:
            row = await store.store_webhook(SOURCE, headers, body)
        except Exception:
            await store.unmark_notice(seen)
            log.exception("PagerDuty delivery %s not stored", delivery)
            return answer(503, {"error": "could not store the delivery; retry"})
        task = asyncio.create_task(process(row, payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return answer(202, {"status": "accepted", "id": delivery})

    return [Route(PATH, receive, methods=["POST"])]


async def replay_pending(*, store: Any, paging: Any, limit: int = 100) -> int:
    """Process PagerDuty deliveries stored but never processed (the process died)."""
    return await replay_inbox(
        store, SOURCE, parse=json.loads, process=paging.on_webhook, limit=limit
    )
