"""Prometheus metrics, one registry per app instance (tests build many apps).

`Metrics` holds rollbot's own metrics (README's *Metrics* table lists each with its type
and labels) and, in the same registry, the client library's process, platform and GC
collectors. Where each is fed:

- HTTP: every request's duration by route template (`bot.web.observe`; an unknown path is
  one label, ``unmatched``, so no caller can invent series); requests by route and status
  where each route answers (`bot.web`);
- outbound calls: latency and errors by service, timed in the one place per adapter where
  calls go out (`bot.adapters.calls`; `outbound(service)` gives an adapter its observer
  and starts that service's series at 0, so the first error is an increase);
- the outbox: pending items and the age of the oldest, read from the database when
  `/metrics` is scraped (`watch_outbox`, then `refresh` before each scrape): every replica
  answers it, the leader's outbox loop alive or not;
- the work queue's depth (a gauge read at scrape time, `watch_work_queue`) and the
  scheduler's lag (`bot.runtime.scheduler`);
- the actions (the pipeline), the watch, the leader lease, the webhooks, the runbook pages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from bot.adapters.calls import ERRORS

__all__ = ["Metrics", "OutboundCalls", "OutboxReader", "version"]

log = logging.getLogger(__name__)

#: How long `refresh` waits for a read at scrape time (Prometheus' scrape timeout is 10 s).
SCRAPE_READ_SECONDS = 2.0


def version() -> str:
    """rollbot's version: the installed distribution's (setuptools-scm derives it from git
    when it is built: ``0.1.dev362+g262b0b0d3``, or ``X.Y.Z`` on a tag ``vX.Y.Z``), or
    ``unknown`` when the code runs from a tree that was never installed. What
    ``rollbot --version`` prints and ``rollbot_build_info`` carries."""
    try:
        return metadata.version("rollbot")
    except metadata.PackageNotFoundError:
        return "unknown"


#: Reads the outbox at a scrape: (items waiting to be sent, not done and not parked; how
#: long the oldest has waited, in seconds, 0 when none waits). `SqlStore.outbox_backlog`.
OutboxReader = Callable[[], Awaitable[tuple[int, float]]]


class OutboundCalls:
    """The `bot.adapters.calls.CallObserver` of one outside service."""

    def __init__(self, seconds: Histogram, errors: dict[str, Counter]) -> None:
        self._seconds = seconds
        self._errors = errors

    def observe(self, seconds: float, error: str | None) -> None:
        self._seconds.observe(seconds)
        if error is not None:
            self._errors[error if error in self._errors else "other"].inc()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        _collectors(self.registry)
        self.build_info = Gauge(
            "rollbot_build_info",
            "Always 1; its version label is the rollbot version this process runs",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version()).set(1)
        self.http_request_seconds = Histogram(
            "rollbot_http_request_duration_seconds",
            "HTTP requests, from their headers to the end of the answer, by route template "
            "(unmatched: any path no route has)",
            ["route"],
            registry=self.registry,
        )
        self.outbound_seconds = Histogram(
            "rollbot_outbound_request_duration_seconds",
            "Calls to an outside service (slack, kubernetes, pagerduty, jira, flags, "
            "prometheus), each as the adapter makes it, the client's own retries included, "
            "answered or failed",
            ["service"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.outbound_errors = Counter(
            "rollbot_outbound_errors_total",
            "Calls to an outside service that failed, by service and kind: unreachable "
            "(connection, timeout, 5xx), throttled (429), forbidden (401/403), refused "
            "(another 4xx), other",
            ["service", "error"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "rollbot_outbox_pending",
            "Outgoing calls (PagerDuty events and notes) waiting in the outbox: not sent yet "
            "or to be retried, parked ones not included; read from the database at scrape "
            "time (NaN: it could not be read)",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "rollbot_outbox_oldest_pending_age_seconds",
            "How long the oldest item waiting in the outbox has waited (0: none waits); "
            "read from the database at scrape time (NaN: it could not be read)",
            registry=self.registry,
        )
        self.work_queue_depth = Gauge(
            "rollbot_work_queue_depth",
            "Jobs queued after Slack was answered (actions, status reads) that no worker has "
            "started yet",
            registry=self.registry,
        )
        self.scheduler_lag = Histogram(
            "rollbot_scheduler_lag_seconds",
            "How late scheduled jobs (release reminders, ticket filing, polls) were handed "
            "to run, after the time they were due",
            registry=self.registry,
            buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400),
        )
        self._outbox: OutboxReader | None = None
        self.http_requests = Counter(
            "rollbot_http_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.actions = Counter(
            "rollbot_actions_total",
            "Actions requested, by action and result",
            ["action", "result"],
            registry=self.registry,
        )
        self.watch_events = Counter(
            "rollbot_watch_events_total",
            "Watch events received",
            ["kind", "type"],
            registry=self.registry,
        )
        self.watch_errors = Counter(
            "rollbot_watch_errors_total", "Watch errors (each retried)", registry=self.registry
        )
        self.leader = Gauge(
            "rollbot_leader",
            "1 while this replica holds the leader lease (acts and answers requests)",
            registry=self.registry,
        )
        self.slack_socket_open = Gauge(
            "rollbot_slack_socket_open",
            "1 while this replica's Socket Mode connection to Slack is open (only the leader "
            "holds one; 0 without slack.app_token)",
            registry=self.registry,
        )
        self.watch_healthy = Gauge(
            "rollbot_watch_healthy",
            "1 while the last watch attempt succeeded",
            registry=self.registry,
        )
        self.watch_cached = Gauge(
            "rollbot_watch_cached_objects",
            "Objects the leader's watch holds in its cache, by kind (slim copies)",
            ["kind"],
            registry=self.registry,
        )
        self.watch_sync_seconds = Gauge(
            "rollbot_watch_sync_seconds",
            "Seconds the leader's watch took from its start to its first full list of every "
            "kind (0 until then)",
            registry=self.registry,
        )
        self.action_verification = Histogram(
            "rollbot_action_verification_seconds",
            "How long an executed action took to verify: from sending the change (Tier 1: "
            "once the patches were accepted; Tier 2: the flip and its read-back) until "
            "reading it back showed the effect (verified=true) or the deadline passed "
            "(verified=false); an action settled after its process ended counts from when "
            "it was asked",
            ["action", "verified"],
            registry=self.registry,
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60),
        )
        self.alertmanager_webhooks = Counter(
            "rollbot_alertmanager_webhooks_total",
            "Alertmanager webhook requests by outcome: accepted, unauthorized, unconfigured, "
            "invalid, too-large, store-failed",
            ["outcome"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "rollbot_alerts_total",
            "Alerts received for a service in the catalog, by service and status",
            ["service", "status"],
            registry=self.registry,
        )
        self.alerts_unknown = Counter(
            "rollbot_alerts_unknown_total",
            "Alerts that match no service in the catalog, by alert name",
            ["alertname"],
            registry=self.registry,
        )
        self.alert_batches_failed = Counter(
            "rollbot_alertmanager_processing_errors_total",
            "Stored Alertmanager webhooks whose processing raised (the inbox row keeps the error)",
            registry=self.registry,
        )
        self.webhooks_for_leader = Counter(
            "rollbot_webhooks_for_leader_total",
            "Webhooks a standby stored and left to the leader's replay to process, by source",
            ["source"],
            registry=self.registry,
        )
        self.webhook_poison = Counter(
            "rollbot_webhook_poison_total",
            "Authentic webhook bodies that cannot be processed: answered 400 and kept in the "
            "inbox as poison (never retried), by source",
            ["source"],
            registry=self.registry,
        )
        self.outbox_parked = Counter(
            "rollbot_outbox_parked_total",
            "Outgoing calls refused for good (a 4xx: the call itself is wrong) and parked: "
            "kept in the outbox with why, said once in the card's thread, never retried; "
            "by kind (pagerduty.event, pagerduty.note)",
            ["kind"],
            registry=self.registry,
        )
        self.runbook_requests = Counter(
            "rollbot_runbook_requests_total",
            "Runbook page requests by kind (page, result, action, renew) and HTTP status",
            ["kind", "status"],
            registry=self.registry,
        )
        self.runbook_links_refused = Counter(
            "rollbot_runbook_links_refused_total",
            "Signed runbook link uses refused, by reason: malformed, bad-signature, expired, "
            "used, wrong-service, csrf, origin, disabled, renew-used, not-authorised",
            ["reason"],
            registry=self.registry,
        )

    # ── fed from outside ──────────────────────────────────────────────────────────────

    def outbound(self, service: str) -> OutboundCalls:
        """The observer an adapter times its calls to `service` with; that service's
        series start at 0 (every error kind), so a first error shows as an increase."""
        errors = {kind: self.outbound_errors.labels(service, kind) for kind in ERRORS}
        return OutboundCalls(self.outbound_seconds.labels(service), errors)

    def watch_work_queue(self, pending: Callable[[], int]) -> None:
        """`rollbot_work_queue_depth` is `pending()` at each scrape."""
        self.work_queue_depth.set_function(pending)

    def watch_cache(self, count: Callable[[str], int], kinds: Iterable[str]) -> None:
        """`rollbot_watch_cached_objects{kind}` is `count(kind)` at each scrape."""
        for kind in kinds:
            self.watch_cached.labels(kind).set_function(functools.partial(count, kind))

    def watch_outbox(self, read: OutboxReader) -> None:
        """The outbox gauges are `read()` at each scrape (`refresh`)."""
        self._outbox = read

    async def refresh(self) -> None:
        """Before a scrape: read what is read at scrape time (the outbox's backlog),
        within `SCRAPE_READ_SECONDS`. A read that fails sets NaN: unknown, never stale."""
        if self._outbox is None:
            return
        try:
            async with asyncio.timeout(SCRAPE_READ_SECONDS):
                pending, age = await self._outbox()
        except Exception as err:  # noqa: BLE001 - the database away: /metrics still answers
            log.debug("outbox backlog not read for /metrics: %r", err)
            self.outbox_pending.set(math.nan)
            self.outbox_oldest_age.set(math.nan)
            return
        self.outbox_pending.set(pending)
        self.outbox_oldest_age.set(age)


def _collectors(registry: CollectorRegistry) -> None:
    """The client library's process (CPU, memory, file descriptors), platform (Python
    version) and garbage-collector collectors, registered in `registry` (the library's
    default registry has its own: a private registry starts without them)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
