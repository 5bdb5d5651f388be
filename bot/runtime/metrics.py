"""Prometheus metrics, one registry per app instance (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.action_seconds = Histogram(
            "rollbot_action_seconds",
            "Click to verified effect",
            ["action"],
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
