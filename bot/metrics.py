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
