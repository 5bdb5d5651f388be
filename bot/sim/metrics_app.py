"""An instrumented stand-in for payment-router's canary and stable pods.

`MetricsApp` exports, on ``GET /metrics`` over HTTP on loopback (its own thread, a private
`CollectorRegistry`), exactly the series the deploy rules, the AnalysisTemplate and rollbot
read:

- ``http_requests_total{version="canary|stable", status="200|500"}`` (counter);
- ``http_request_duration_seconds_bucket{version, le}`` with ``_sum`` and ``_count``
  (histogram, buckets from 25 ms to 5 s with edges on the 200 ms and 300 ms gates).

A background thread makes its own synthetic traffic (``rps`` requests per second per version,
50 by default), so nothing has to send load. Per version, two knobs (thread-safe):

- ``error_rate``: the fraction of requests answered 500. Errors are spread evenly, not drawn at
  random (an accumulator emits a 500 every ``1 / error_rate`` requests), so the ratio over any
  window of a few seconds is the knob's value, and a zero rate never produces a stray 500;
- ``latency_ms``: the typical duration; each observation is drawn uniformly within ±20 % of
  it (seeded), so 80 ms stays under every gate (p99 ≤ 96 ms) and 450 ms breaches them all
  (every request ≥ 360 ms).

Scraped by Prometheus as ``job="payment-router"``, the job label is the service name.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

Version = Literal["canary", "stable"]
VERSIONS: tuple[Version, ...] = ("canary", "stable")

#: Bucket upper bounds in seconds: fine around the 200 ms (p99) and 300 ms (p95) gates,
#: coarse towards 2 s and beyond.
BUCKETS: tuple[float, ...] = (
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    5.0,
)

HEALTHY_ERROR_RATE = 0.0
HEALTHY_LATENCY_MS = 80.0
LATENCY_SPREAD = 0.2  # observations are latency_ms × U(1 - spread, 1 + spread)


@dataclass
class _Behaviour:
    error_rate: float = HEALTHY_ERROR_RATE
    latency_ms: float = HEALTHY_LATENCY_MS
    error_debt: float = 0.0  # accumulated fraction of a 500 not yet emitted
    request_debt: float = 0.0  # accumulated fraction of a request not yet made


class MetricsApp:
    """Synthetic canary + stable traffic, exported for Prometheus on ``/metrics``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rps: float = 50.0,
        tick_seconds: float = 0.05,
        seed: int = 7,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.rps = rps
        self.tick_seconds = tick_seconds
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._behaviour: dict[str, _Behaviour] = {v: _Behaviour() for v in VERSIONS}
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "http_requests",
            "HTTP requests served, by version and status code.",
            ["version", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds, by version.",
            ["version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # Every series exists from the first scrape, at zero: a ratio whose numerator is
        # absent would be empty rather than 0.
        for version in VERSIONS:
            for status in ("200", "500"):
                self._requests.labels(version=version, status=status)
            self._duration.labels(version=version)
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._traffic_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- knobs ---------------------------------------------------------------------------

    def set(self, version: Version, *, error_rate: float, latency_ms: float) -> None:
        """Set how ``version`` behaves from now on (fraction of 500s, typical latency)."""
        if version not in VERSIONS:
            raise ValueError(f"unknown version {version!r}; expected one of {VERSIONS}")
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")
        if latency_ms <= 0:
            raise ValueError(f"latency_ms must be positive, got {latency_ms}")
        with self._lock:
            b = self._behaviour[version]
            b.error_rate = error_rate
            b.latency_ms = latency_ms

    def degrade_canary(self, error_rate: float = 0.3, latency_ms: float = 450.0) -> None:
        """Make the canary breach every gate (defaults: 30 % 500s, ~450 ms)."""
        self.set("canary", error_rate=error_rate, latency_ms=latency_ms)

    def heal(self) -> None:
        """Both versions back to healthy (no errors, ~80 ms)."""
        for version in VERSIONS:
            self.set(version, error_rate=HEALTHY_ERROR_RATE, latency_ms=HEALTHY_LATENCY_MS)

    def behaviour(self, version: Version) -> tuple[float, float]:
        """The current ``(error_rate, latency_ms)`` of ``version``."""
        with self._lock:
            b = self._behaviour[version]
            return b.error_rate, b.latency_ms

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MetricsApp is not started")
        return int(self._server.server_port)

    @property
    def target(self) -> str:
        """``host:port``, as a Prometheus static_configs target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The metrics endpoint, ``http://host:port/metrics``."""
        return f"http://{self.target}/metrics"

    def start(self) -> MetricsApp:
        if self._server is not None:
            return self
        self._stopping.clear()
        server, thread = start_http_server(
            self._requested_port, addr=self.host, registry=self.registry
        )
        self._server, self._server_thread = server, thread
        self._traffic_thread = threading.Thread(
            target=self._traffic_loop, name="metrics-app-traffic", daemon=True
        )
        self._traffic_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._traffic_thread is not None:
            self._traffic_thread.join(timeout=5)
            self._traffic_thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            self._server_thread = None

    def __enter__(self) -> MetricsApp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- traffic -------------------------------------------------------------------------

    def _traffic_loop(self) -> None:
        last = time.monotonic()
        while not self._stopping.wait(self.tick_seconds):
            now = time.monotonic()
            elapsed, last = now - last, now
            self.generate(elapsed)

    def generate(self, seconds: float) -> None:
        """Serve ``seconds`` worth of synthetic traffic for every version at once."""
        for version in VERSIONS:
            with self._lock:
                b = self._behaviour[version]
                b.request_debt += self.rps * seconds
                count = int(b.request_debt)
                b.request_debt -= count
                outcomes: list[tuple[str, float]] = []
                for _ in range(count):
                    b.error_debt += b.error_rate
                    status = "200"
                    if b.error_debt >= 1.0:
                        b.error_debt -= 1.0
                        status = "500"
                    spread = self._random.uniform(1 - LATENCY_SPREAD, 1 + LATENCY_SPREAD)
                    outcomes.append((status, b.latency_ms * spread / 1000.0))
            for status, seconds_taken in outcomes:
                self._requests.labels(version=version, status=status).inc()
                self._duration.labels(version=version).observe(seconds_taken)
