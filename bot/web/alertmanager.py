"""`POST /webhooks/alertmanager`: Alertmanager's webhook receiver.

Per request, in this order:

1. no token configured → 503 ``alertmanager.bearer_token is not configured`` (fail closed);
2. ``Authorization: Bearer <token>`` compared in constant time; missing, another scheme or a
   wrong token → 401; nothing is stored or run;
3. a body over `max_body_bytes` → 413; a body `bot.core.alerts.parse_webhook` refuses → 400
   with exactly what is wrong (Alertmanager does not retry 4xx), kept as poison
   (`bot.web.inbox.PoisonBin`: in the inbox, counted, said once in the fallback channel);
4. the raw body goes to the webhook inbox (headers without ``Authorization``) BEFORE the
   2xx (the bodies of requests that arrive while one is being written are written
   together next, in one transaction: `bot.runtime.batch.Batched`); when that fails (the
   database locked past its busy timeout, a full disk) → 503 with ``Retry-After``, so
   Alertmanager retries, and nothing is processed;
5. 200 at once; the alerts are processed in a background task: counted per service and
   status (or as unknown), handed to `on_alerts(alerts, group)`, and the inbox row marked
   processed (with the error, when `on_alerts` raised, kept for the operator) once
   `on_alerts` returned; the marks of rows processed meanwhile are one transaction
   (`bot.runtime.batch.Batched`: under a storm, a few writes rather than one per webhook).

A replica that dies between 4 and 5, or whose processing fails to finish (the database
went away), leaves the row pending; the leader replays those at its start and then every
few seconds (`bot.incidents.inbox.replay_alerts`), skipping the rows in flight here
(`in_flight`). Every replica stores; only one processes (`processes()`: the leader, whose
incidents are the live ones): a standby answers the same 200 and leaves step 5 to the
leader's replay, within `bot.wiring.rollbot.REPLAY_AFTER` + `REPLAY_EVERY` seconds.
Counters: ``rollbot_alertmanager_webhooks_total{outcome}``,
``rollbot_alerts_total{service,status}``, ``rollbot_alerts_unknown_total{alertname}``,
``rollbot_alertmanager_processing_errors_total``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.alerts import AlertMatcher, AlertRouter, MalformedWebhook, parse_webhook
from bot.core.model import Alert
from bot.core.signatures import split_secrets
from bot.incidents.inbox import SOURCE, OnAlerts
from bot.runtime.batch import Batched
from bot.runtime.inbox import InFlight, retry_later
from bot.runtime.metrics import Metrics
from bot.web.inbox import RETRY_AFTER, PoisonBin

log = logging.getLogger(__name__)

PATH = "/webhooks/alertmanager"
MAX_BODY_BYTES = 8 * 1024 * 1024  # Alertmanager bodies are kilobytes; thousands of alerts fit
# Webhooks processed at once: under a storm the rest wait their turn (stored already), so
# the event loop's queue stays short and the next request is answered without waiting
# behind thousands of processing steps.
PROCESSING = 8


class WebhookInbox(Protocol):
    """The part of the store the receiver needs (`bot.store.SqlStore` has it)."""

    async def store_webhook(
        self, source: str, headers: Mapping[str, str], body: str | bytes
    ) -> int: ...

    async def mark_webhook_processed(self, id: int, error: str | None = None) -> None: ...

    async def mark_webhooks_processed(self, marks: Sequence[tuple[int, str | None]]) -> None: ...

    async def store_webhooks(
        self, rows: Sequence[tuple[str, Mapping[str, str], str | bytes]]
    ) -> list[int]: ...


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class AlertmanagerReceiver:
    """The endpoint's state: its collaborators and the background tasks in flight."""

    def __init__(
        self,
        *,
        token: str | None,
        store: WebhookInbox,
        on_alerts: OnAlerts,
        metrics: Metrics,
        matchers: Mapping[str, Sequence[AlertMatcher]] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        poison: PoisonBin | None = None,
        in_flight: InFlight | None = None,
        processes: Callable[[], bool] = lambda: True,
    ) -> None:
        self._poison = poison
        # Whether this replica processes what it stores (it leads), or leaves it to the
        # leader's replay.
        self._processes = processes
        # The rows being processed here, which the leader's replay leaves alone.
        self.in_flight = in_flight if in_flight is not None else InFlight()
        # Each token accepted (``new,old`` while a rotation is rolled out).
        tokens = [t.encode("utf-8") for t in split_secrets(token)]
        self._token = tokens or None
        self._store = store
        # The bodies stored, and the marks of rows processed, while a write of theirs is
        # under way go together in the next transaction (group commit).
        self.stored: Batched[tuple[str, Mapping[str, str], bytes], int] = Batched(
            store.store_webhooks
        )
        self.marks: Batched[tuple[int, str | None], None] = Batched(self._mark)
        self._on_alerts = on_alerts
        self._metrics = metrics
        self._router = AlertRouter(matchers) if matchers is not None else None
        self._max_body_bytes = max_body_bytes
        self.tasks: set[asyncio.Task[None]] = set()
        self._processing = asyncio.Semaphore(PROCESSING)

    async def _mark(self, marks: list[tuple[int, str | None]]) -> list[None]:
        await self._store.mark_webhooks_processed(marks)
        return [None] * len(marks)

    def _outcome(self, outcome: str) -> None:
        self._metrics.alertmanager_webhooks.labels(outcome).inc()
        self._metrics.http_requests.labels(PATH, _STATUS[outcome]).inc()

    def _authorised(self, request: Request) -> str | None:
        """None when authorised, else why not."""
        assert self._token is not None
        header = request.headers.get("authorization")
        if not header:
            return "missing Authorization: Bearer token"
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return "Authorization must use the Bearer scheme"
        given = credentials.strip().encode("utf-8")
        if not any([hmac.compare_digest(given, token) for token in self._token]):
            return "invalid bearer token"
        return None

    async def handle(self, request: Request) -> Response:
        if self._token is None:
            self._outcome("unconfigured")
            return _error(503, "alertmanager.bearer_token is not configured")
        refused = self._authorised(request)
        if refused is not None:
            self._outcome("unauthorized")
            return _error(401, refused, **{"WWW-Authenticate": 'Bearer realm="rollbot"'})
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            self._outcome("too-large")
            return _error(413, f"body over {self._max_body_bytes} bytes")
        body = await request.body()
        if len(body) > self._max_body_bytes:
            self._outcome("too-large")
            return _error(413, f"body over {self._max_body_bytes} bytes")
        try:
            alerts, group = parse_webhook(body)
        except MalformedWebhook as exc:
            self._outcome("invalid")
            answer: dict[str, Any] = {"error": exc.message}
            if self._poison is not None:
                row = await self._poison.park(SOURCE, _kept_headers(request), body, exc.message)
                answer["kept_as"] = row
            return JSONResponse(answer, status_code=400)
        headers = _kept_headers(request)
        try:
            webhook_id = await self.stored.add((SOURCE, headers, body))
        except Exception:  # any store failure must become a retryable 503
            log.exception("alertmanager webhook: could not store the body; answering 503")
            self._outcome("store-failed")
            return _error(
                503, "could not store the webhook; retry later", **{"Retry-After": RETRY_AFTER}
            )
        self._outcome("accepted")
        if not self._processes():  # a standby: the leader's replay processes it
            self.count(alerts)
            self._metrics.webhooks_for_leader.labels(SOURCE).inc()
            return JSONResponse({"status": "accepted", "id": webhook_id, "alerts": len(alerts)})
        self.in_flight.add(webhook_id)
        task = asyncio.create_task(self.process(webhook_id, alerts, group))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse({"status": "accepted", "id": webhook_id, "alerts": len(alerts)})

    async def process(self, webhook_id: int, alerts: list[Alert], group: dict[str, Any]) -> None:
        """Count, hand over, mark processed, at most `PROCESSING` at once. Never raises (it
        runs after the 200)."""
        async with self._processing:
            await self._process(webhook_id, alerts, group)

    async def _process(self, webhook_id: int, alerts: list[Alert], group: dict[str, Any]) -> None:
        self.count(alerts)
        error: str | None = None
        try:
            await self._on_alerts(alerts, group)
        except Exception as exc:  # recorded in the inbox row, not lost
            self._metrics.alert_batches_failed.inc()
            if retry_later(exc):  # left pending: the leader's replay tries it again
                log.warning("alertmanager webhook %s: processing failed (%r)", webhook_id, exc)
                self.in_flight.discard(webhook_id)
                return
            log.exception("alertmanager webhook %s: processing failed", webhook_id)
            error = f"{type(exc).__name__}: {exc}"
        try:
            await self.marks.add((webhook_id, error))
        except Exception:  # the row stays pending and is replayed
            log.exception("alertmanager webhook %s: could not mark it processed", webhook_id)
        finally:
            self.in_flight.discard(webhook_id)

    def count(self, alerts: list[Alert]) -> None:
        if self._router is None:
            return
        by_service, unknown = self._router.route(alerts)
        for service, routed in by_service.items():
            for alert in routed:
                self._metrics.alerts.labels(service, alert.status).inc()
        for alert in unknown:
            self._metrics.alerts_unknown.labels(alert.name).inc()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the background tasks (at shutdown); what is left stays pending."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


def _kept_headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() != "authorization"}


_STATUS = {
    "accepted": "200",
    "unconfigured": "503",
    "unauthorized": "401",
    "too-large": "413",
    "invalid": "400",
    "store-failed": "503",
}


def alertmanager_route(
    *,
    token: str | None,
    store: WebhookInbox,
    on_alerts: OnAlerts,
    metrics: Metrics,
    matchers: Mapping[str, Sequence[AlertMatcher]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    poison: PoisonBin | None = None,
) -> Route:
    """The route for ``POST /webhooks/alertmanager``.

    `token`: the configured bearer token (``settings.alertmanager.bearer_token``'s secret
    value) or None. `matchers`: the catalog's (``settings.alert_matchers()``), for the
    per-service and unknown counters; None counts no alerts. The receiver (its background
    tasks, `drain`) is ``route.endpoint.__self__``.
    """
    receiver = AlertmanagerReceiver(
        token=token,
        store=store,
        on_alerts=on_alerts,
        metrics=metrics,
        matchers=matchers,
        max_body_bytes=max_body_bytes,
        poison=poison,
    )
    return Route(PATH, receiver.handle, methods=["POST"], name="alertmanager_webhook")
