"""POST /webhooks/pagerduty: PagerDuty v3 webhooks and Incident Workflow actions.

- Authentic or nothing: a v3 delivery carries ``X-PagerDuty-Signature`` (``v1=`` HMAC-SHA256
  of the raw body; several during a secret rotation), checked in constant time against
  ``pagerduty.webhook_secret`` (comma-separated: old and new). An Incident Workflow's
  "Send a Webhook POST" step cannot compute a signature, so it sends a static header,
  ``Authorization: Bearer <pagerduty.workflow_secret>``; such a request can only run a
  workflow action, never pass for a v3 event, and without a workflow secret the path is off.
  Anything else: 401, nothing stored or done, counted in /metrics. Not configured: 503.
- The body limit is enforced while reading (`bot.web.guard`), before any of it is kept.
- Exactly once: a signed delivery is known by the event id INSIDE the signed body, so a
  replay with another (unsigned) ``X-Webhook-Id`` is still a duplicate; a workflow request,
  which has no id, by its body's digest for two minutes (then the same action may run
  again: open, close, open). The first copy is stored (inbox) before the 202, with its
  duplicate mark in the same transaction; later copies get 200 "duplicate".
- The database cannot take it (locked past its busy timeout, disk full): 503 with
  ``Retry-After``, and nothing written (neither the row nor the mark), so PagerDuty's
  retry is processed once.
- Authentic but unprocessable (not JSON, nested too deep, not an object, a workflow body
  without an action, a known key of another type than PagerDuty sends: `shape_problem`):
  400, kept as poison (`PoisonBin`), never retried.
- Answered quickly, processed after: the body is handled in a background task; bodies
  stored but never processed (the process died) are replayed at start.
- Unknown event types are accepted and ignored.
- Who is on call may have changed: every signed v3 delivery that may tell of a person's
  doing (`bot.paging.inbox.by_a_person`), of any event type and duplicates included, calls
  `on_signed` before it is stored, which drops this replica's cached on-call answers
  (authorisation is by on-call, `bot.adapters.pagerduty`). PagerDuty sends no event for a
  schedule hand-off or an override, and no event says which escalation policy's on-calls
  changed, so the whole cache is dropped; but not for an integration's event (rollbot's
  own acknowledge and resolve coming back, a monitor's trigger) nor for rollbot's own
  notes, which tell nothing of people: else every mitigation's echo would empty the cache
  before the next click. The cache's TTL (`pagerduty.on_call_cache_seconds`) bounds the
  rest. A workflow request (Bearer) is a person asking for an action, not PagerDuty
  telling a change: it drops nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.core.payloads import MalformedBody, parse_json_object
from bot.core.signatures import split_secrets, verify_pagerduty
from bot.paging.inbox import SOURCE, WORKFLOW_REPEAT, WORKFLOW_SOURCE, by_a_person
from bot.runtime.inbox import InFlight, retry_later
from bot.web.inbox import RETRY_AFTER, PoisonBin
from bot.web.refusals import RefusalLog

if TYPE_CHECKING:
    from bot.runtime.metrics import Metrics
    from bot.settings import PagerDutySettings

Process = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger(__name__)

PATH = "/webhooks/pagerduty"


def _bearer_ok(header: str | None, secrets: list[str]) -> bool:
    """Whether `header` is ``Bearer <one of secrets>`` (each compared in constant time)."""
    if not secrets or not header:
        return False
    scheme, _, token = header.partition(" ")
    given = token.strip().encode()
    matched = [hmac.compare_digest(given, secret.encode()) for secret in secrets]
    return scheme.lower() == "bearer" and any(matched)


def pagerduty_routes(
    *,
    settings: PagerDutySettings,
    store: Any,
    metrics: Metrics,
    on_webhook: Process,
    on_workflow: Process,
    poison: PoisonBin,
    in_flight: InFlight | None = None,
    processes: Callable[[], bool] = lambda: True,
    on_signed: Callable[[], None] = lambda: None,
) -> list[BaseRoute]:
    """The PagerDuty webhook's route. `on_webhook` gets each signed v3 delivery
    (`bot.paging.PagingEngine`), `on_workflow` each workflow request
    (`bot.paging.PagerDutyActions`); `store` is a `bot.store.SqlStore` (the inbox and the
    duplicate records). Every replica stores a delivery; only one where `processes()` (the
    leader) hands it on: a standby answers the same 202 and leaves it to the leader's
    replay (`bot.paging.inbox`). `on_signed` is called for every signed v3 delivery that
    may tell of a person's doing, on every replica (the on-call cache is per process)."""
    secrets = split_secrets(
        settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    )
    # No workflow secret: the workflow path is off (the signing secret never doubles as it).
    workflow = split_secrets(
        settings.workflow_secret.get_secret_value() if settings.workflow_secret else None
    )
    tasks: set[asyncio.Task[None]] = set()
    refusals = RefusalLog(log)
    # The rows being processed here, which the leader's replay leaves alone.
    flying = in_flight if in_flight is not None else InFlight()

    def answer(status: int, body: dict[str, Any], *, retry_after: bool = False) -> Response:
        metrics.http_requests.labels(PATH, str(status)).inc()
        headers = {"Retry-After": RETRY_AFTER} if retry_after else None
        return JSONResponse(body, status_code=status, headers=headers)

    async def process(row: int, source: str, payload: dict[str, Any]) -> None:
        error: str | None = None
        try:
            if source == WORKFLOW_SOURCE:
                await on_workflow(payload)
            else:
                await on_webhook(payload)
        except Exception as exc:  # boundary: recorded in the inbox row
            if retry_later(exc):  # left pending: the leader's replay tries it again
                log.warning("PagerDuty delivery %s failed (%r); retrying", row, exc)
                flying.discard(row)
                return
            log.exception("PagerDuty delivery %s failed", row)
            error = f"{type(exc).__name__}: {exc}"
        try:
            await store.mark_webhook_processed(row, error=error)
        except Exception:  # the row stays pending and is replayed
            log.exception("PagerDuty delivery %s: could not mark it processed", row)
        finally:
            flying.discard(row)

    async def refuse_poison(
        source: str, headers: dict[str, str], body: bytes, why: str
    ) -> Response:
        row = await poison.park(source, headers, body, why)
        return answer(400, {"error": why, "kept_as": row})

    async def receive(request: Request) -> Response:
        if not secrets and not workflow:
            return answer(503, {"error": "PagerDuty webhooks are not configured on rollbot"})
        body = await request.body()  # bounded by bot.web.guard while it is read
        if verify_pagerduty(body, request.headers.get("x-pagerduty-signature"), secrets):
            source = SOURCE
        elif _bearer_ok(request.headers.get("authorization"), workflow):
            source = WORKFLOW_SOURCE
        else:
            refusals.refused("PagerDuty webhook refused: bad or missing signature")
            return answer(401, {"error": "bad or missing signature"})
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("x-webhook-id", "x-webhook-subscription", "user-agent")
        }
        try:
            payload = parse_json_object(body)
        except MalformedBody as exc:
            return await refuse_poison(source, headers, body, exc.message)
        if source == SOURCE and by_a_person(payload, settings.from_email):
            on_signed()  # who is on call may have changed: ask PagerDuty again
        why = shape_problem(source, payload)
        if why is not None:
            return await refuse_poison(source, headers, body, why)
        delivery = _delivery_id(source, payload, body)
        try:
            # The duplicate mark and the inbox row in one transaction: both or neither.
            # A workflow body has no id: the same person running the same action on the
            # same incident twice sends the same bytes. Only a copy within WORKFLOW_REPEAT
            # (a retried POST) is a duplicate; a later run is a new request.
            row = await store.store_webhook_once(
                source,
                headers,
                body,
                seen=f"pd-webhook:{delivery}",
                forget_after=WORKFLOW_REPEAT if source == WORKFLOW_SOURCE else None,
            )
        except Exception:  # any store failure (locked, full, gone) must become a 503
            log.exception("PagerDuty delivery %s not stored; answering 503", delivery)
            return answer(503, {"error": "could not store the delivery; retry"}, retry_after=True)
        if row is None:
            return answer(200, {"status": "duplicate", "id": delivery})
        if not processes():  # a standby: the leader's replay processes it
            metrics.webhooks_for_leader.labels(source).inc()
            return answer(202, {"status": "accepted", "id": delivery})
        flying.add(row)
        task = asyncio.create_task(process(row, source, payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return answer(202, {"status": "accepted", "id": delivery})

    return [Route(PATH, receive, methods=["POST"])]


def shape_problem(source: str, payload: dict[str, Any]) -> str | None:
    """Why an authentic body cannot be processed, or None. The engine (`bot.paging`) reads
    these keys as PagerDuty shapes them (``incident.get(…)``, ``a.get("assignee")``): a
    workflow body ``{"action": …, "incident": "x"}`` or an event whose ``data`` was a list
    was answered 202, then failed in processing, kept as an ordinary inbox row with the
    error instead of as poison. Every object may be null or absent; an event of an unknown
    shape (no ``event`` at all) is still accepted and ignored."""
    if source == WORKFLOW_SOURCE:
        if "action" not in payload:
            return "a workflow body names no action"
        if not isinstance(payload["action"], str):
            return "a workflow body's action is not text"
        return _not_objects(payload, ("incident", "user"))
    if "event" not in payload:
        return None
    event = payload["event"]
    if not isinstance(event, dict):
        return "event is not an object"
    why = _not_objects(event, ("data", "agent"), "event.")
    if why is not None:
        return why
    data = event.get("data") or {}
    if data.get("type") == "incident":
        incident = data
    else:
        why = _not_objects(data, ("incident",), "event.data.")
        if why is not None:
            return why
        incident = data.get("incident") or {}
    assignments = incident.get("assignments")
    if assignments is None:
        return None
    if not isinstance(assignments, list) or not all(
        isinstance(a, dict) and (a.get("assignee") is None or isinstance(a["assignee"], dict))
        for a in assignments
    ):
        return "the incident's assignments are not a list of objects with an assignee"
    return None


def _not_objects(value: dict[str, Any], keys: tuple[str, ...], prefix: str = "") -> str | None:
    for key in keys:
        if value.get(key) is not None and not isinstance(value[key], dict):
            return f"{prefix}{key} is not an object"
    return None


def _delivery_id(source: str, payload: dict[str, Any], body: bytes) -> str:
    """What makes a delivery the same delivery: for a signed v3 webhook, the event id inside
    the signed body (``X-Webhook-Id`` is not signed: changing or dropping it made a replay
    look new); for a workflow request, which carries no id, the digest of its body."""
    event = payload.get("event")
    if source == SOURCE and isinstance(event, dict) and isinstance(event.get("id"), str):
        return f"event:{event['id']}"
    return f"body:{hashlib.sha256(body).hexdigest()}"
