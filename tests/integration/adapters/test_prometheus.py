"""PrometheusMetrics (bot.adapters.prometheus) against a real Prometheus 2.42.

The module starts its own Prometheus (`/usr/bin/prometheus`, loopback port, temp TSDB),
scraping every second a `prometheus_client` exporter started here: job "payment-router",
`http_requests_total{version,status}` and the `http_request_duration_seconds` histogram,
advanced by a background thread whose error fraction and latency per version the tests set.

Aspects under test:
- instant(): vector values with their labels, scalars, NaN dropped (no data), +Inf kept,
  evaluation at a given `at`, a long query sent as a POST form and answered the same;
- evidence(): canary and stable side by side; after the canary is made erroneous and slow,
  breaches() names its error rate and p95 while stable stays healthy;
- a malformed query (400 bad_data) and an unexecutable one (422 execution) → InvalidRequest
  (QueryRejected) with Prometheus' own message and the query; a matrix or string result →
  InvalidRequest; a bad custom template gives partial evidence naming what is missing;
- a Prometheus that was stopped, or a closed port → instant() raises Unreachable and
  evidence() returns available=False "Prometheus unreachable: …" within the timeout;
- a server that accepts and never answers → evidence() returns within timeout + margin with
  "timed out after N s", all six queries bounded together; instant() raises Unreachable;
- wire shapes a real Prometheus will not produce on demand (httpx.MockTransport): 503 and
  429 with Retry-After (seconds and HTTP date) → delay; 5xx without JSON; 401 → Forbidden;
  404 → InvalidRequest; a 200 that is not the API's JSON → Unreachable; one slow query
  leaves the other five in a partial evidence within the timeout;
- graph links: `<graph_url>/graph?g0.expr=…&g0.tab=0&g0.range_input=1h`, and the evidence
  link's expression, run on Prometheus, yields the canary and the stable series.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bot.adapters.prometheus import PrometheusMetrics, QueryRejected, render
from bot.core.errors import Forbidden, InvalidRequest, TemporaryError, Unreachable
from bot.core.evidence import breaches, describe
from bot.core.model import Evidence
from tests.helpers import eventually, eventually_sync, free_port, on_a_free_port
from tests.plugins.peers import require_peer

PROMETHEUS = os.environ.get("ROLLBOT_PROMETHEUS_BIN", "/usr/bin/prometheus")
JOB = "payment-router"
SLO_ERROR_RATE, SLO_P95_MS, SLO_P99_MS = 0.02, 300.0, 500.0
BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


# ── the exporter: a tiny payment-router whose canary can be made to misbehave ──────────


@dataclass
class Behaviour:
    errors_per_10: int = 0  # of every 10 requests, how many answer 500
    latency_s: float = 0.02


@dataclass
class Traffic:
    """Counters advanced every 50 ms: 10 requests per version per tick."""

    port: int
    versions: dict[str, Behaviour] = field(
        default_factory=lambda: {"canary": Behaviour(), "stable": Behaviour()}
    )

    def set(self, version: str, *, errors_per_10: int, latency_s: float) -> None:
        self.versions[version] = Behaviour(errors_per_10, latency_s)


@pytest.fixture(scope="module")
def traffic() -> Iterator[Traffic]:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests served", ["version", "status"], registry=registry)
    duration = Histogram(
        "http_request_duration_seconds",
        "Request latency",
        ["version"],
        buckets=BUCKETS,
        registry=registry,
    )
    for version in ("canary", "stable"):
        for status in ("200", "500"):
            requests.labels(version=version, status=status)  # every series from 0
        duration.labels(version=version)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    state = Traffic(port=server.server_port)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            for version, b in list(state.versions.items()):
                requests.labels(version=version, status="500").inc(b.errors_per_10)
                requests.labels(version=version, status="200").inc(10 - b.errors_per_10)
                for _ in range(10):
                    duration.labels(version=version).observe(b.latency_s)

    ticker = threading.Thread(target=run, name="traffic", daemon=True)
    ticker.start()
    yield state
    stop.set()
    ticker.join(5)
    server.shutdown()
    server.server_close()
    thread.join(5)


# ── Prometheus itself ───────────────────────────────────────────────────────────────


@dataclass
class PromProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_prometheus(base: Path, scrape_target: str | None) -> PromProcess:
    require_peer("prometheus", os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} not found")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "prometheus.yml"
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "scrape_configs:"]
    if scrape_target:
        lines += [
            f"  - job_name: {JOB}",
            "    static_configs:",
            f"      - targets: ['{scrape_target}']",
        ]
    else:
        lines[-1] = "scrape_configs: []"
    config.write_text("\n".join(lines) + "\n")
    log = base / "prometheus.log"

    def start(port: int) -> PromProcess:
        with log.open("wb") as out:  # this attempt's output only
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={base / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        prom = PromProcess(url=f"http://127.0.0.1:{port}", process=process, log=log)

        def ready() -> bool:
            if process.poll() is not None:
                raise _Exited(f"prometheus exited {process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                return client.get(f"{prom.url}/-/ready").status_code == 200
            return False

        try:
            with httpx.Client(timeout=1.0) as client:
                eventually_sync(ready, timeout=30, what=lambda: f"prometheus ready:\n{_tail(log)}")
        except BaseException:
            prom.stop()
            raise
        return prom

    # --web.listen-address needs a port number: a port taken between probe and bind is retried
    return on_a_free_port(start, taken=lambda exc: "address already in use" in str(exc))


class _Exited(RuntimeError):
    pass


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


@pytest.fixture(scope="module")
def prometheus(traffic: Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromProcess]:
    prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{traffic.port}")
    try:
        # first samples of both versions, with a deadline
        query = f'count(http_requests_total{{job="{JOB}"}}) == 4'
        with httpx.Client(timeout=2.0) as client:
            eventually_sync(
                lambda: client.get(f"{prom.url}/api/v1/query", params={"query": query}).json()[
                    "data"
                ]["result"],
                timeout=30,
                interval=0.1,
                what=lambda: f"samples scraped:\n{_tail(prom.log)}",
            )
        yield prom
    finally:
        prom.stop()


@pytest.fixture
async def metrics(prometheus: PromProcess) -> AsyncIterator[PrometheusMetrics]:
    async with PrometheusMetrics(base_url=prometheus.url, timeout=5.0) as m:
        yield m


def now() -> datetime:
    return datetime.now(UTC)


async def evidence_of(
    metrics: PrometheusMetrics, templates: Mapping[str, str | None] | None = None
) -> Evidence:
    """payment-router's evidence against the AnalysisTemplate's SLOs (p99 relaxed to 500)."""
    return await metrics.evidence(
        job=JOB,
        templates=templates,
        slo_error_rate=SLO_ERROR_RATE,
        slo_p95_ms=SLO_P95_MS,
        slo_p99_ms=SLO_P99_MS,
        now=now(),
    )


async def poll_evidence(
    metrics: PrometheusMetrics,
    until: str,
    check: Callable[[Evidence], bool],
    *,
    within: float = 45.0,
) -> Evidence:
    """Evidence, re-read every 0.25 s until `check(evidence)` holds; fails after `within` s."""
    last: list[Evidence] = []

    async def checked() -> Evidence | None:
        last[:] = [await evidence_of(metrics)]
        return last[0] if check(last[0]) else None

    return await eventually(
        checked,
        timeout=within,
        interval=0.25,
        what=lambda: f"{until}; last evidence: {last[0] if last else None}",
    )


# ── instant queries ─────────────────────────────────────────────────────────────────


@pytest.mark.timeout(120)
async def test_instant_vector_values_and_labels(metrics: PrometheusMetrics) -> None:
    samples = await metrics.instant(f'http_requests_total{{job="{JOB}",status="200"}}')
    by_version = {labels["version"]: (labels, value) for labels, value in samples}
    assert set(by_version) == {"canary", "stable"}
    for labels, value in by_version.values():
        assert labels["__name__"] == "http_requests_total"
        assert labels["job"] == JOB
        assert labels["status"] == "200"
        assert value > 0 and value == int(value)

    summed = await metrics.instant(f'sum by (version) (http_requests_total{{job="{JOB}"}})')
    assert sorted(labels["version"] for labels, _ in summed) == ["canary", "stable"]
    assert all(set(labels) == {"version"} for labels, _ in summed)


@pytest.mark.timeout(120)
async def test_instant_scalars_nan_inf_and_time(metrics: PrometheusMetrics) -> None:
    assert await metrics.instant("42") == [({}, 42.0)]
    assert await metrics.instant("scalar(vector(0.25))") == [({}, 0.25)]
    assert await metrics.instant("vector(1.5)") == [({}, 1.5)]
    # 0/0: no traffic → NaN → no data, for scalars and vectors alike
    assert await metrics.instant("0/0") == []
    assert await metrics.instant("vector(0) / vector(0)") == []
    assert await metrics.instant(f'sum(http_requests_total{{job="{JOB}"}}) * 0 / 0') == []
    [(labels, value)] = await metrics.instant("1/0")
    assert labels == {} and value == math.inf
    [(_, value)] = await metrics.instant("-1/0")
    assert value == -math.inf

    at = datetime(2026, 11, 22, 3, 57, 2, 275000, tzinfo=UTC)
    assert await metrics.instant("time()", at=at) == [({}, at.timestamp())]
    naive = datetime(2026, 11, 22, 3, 57, 2)  # read as UTC
    assert await metrics.instant("time()", at=naive) == [
        ({}, naive.replace(tzinfo=UTC).timestamp())
    ]


@pytest.mark.timeout(120)
async def test_long_query_is_posted_as_a_form(prometheus: PromProcess) -> None:
    methods: list[str] = []

    async def record(request: httpx.Request) -> None:
        methods.append(request.method)

    long_query = " + ".join(["vector(1)"] * 400)  # 4,800 characters
    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        m = PrometheusMetrics(base_url=prometheus.url + "/", client=client)
        assert await m.instant(long_query) == [({}, 400.0)]
        assert await m.instant("vector(1) + vector(1)") == [({}, 2.0)]
        await m.aclose()  # leaves a client it did not make open
        assert not client.is_closed
    assert methods == ["POST", "GET"]


# ── evidence: canary against stable ───────────────────────────────────────────────────


@pytest.mark.timeout(120)
async def test_evidence_shows_the_canary_going_bad(
    metrics: PrometheusMetrics, traffic: Traffic
) -> None:
    def complete(e: Evidence) -> bool:
        pairs = (e.error_rate, e.p95_ms, e.p99_ms)
        return e.available and all(None not in (p.canary, p.stable) for p in pairs)

    healthy = await poll_evidence(metrics, "complete", complete)
    assert healthy.detail == ""
    assert healthy.error_rate.canary == 0.0 and healthy.error_rate.stable == 0.0
    for pair in (healthy.p95_ms, healthy.p99_ms):
        assert pair.canary is not None and pair.stable is not None
        assert 0 < pair.canary <= 50 and 0 < pair.stable <= 50  # all in the first bucket
    assert breaches(healthy) == []
    assert (healthy.slo_error_rate, healthy.slo_p95_ms, healthy.slo_p99_ms) == (0.02, 300, 500)
    assert healthy.queried_at is not None

    traffic.set("canary", errors_per_10=5, latency_s=0.4)
    try:

        def breaching(e: Evidence) -> bool:
            found = breaches(e)
            return any("error rate" in b for b in found) and any("p95" in b for b in found)

        bad = await poll_evidence(metrics, "breaching", breaching)
    finally:
        traffic.set("canary", errors_per_10=0, latency_s=0.02)

    assert bad.error_rate.canary is not None and 0.02 <= bad.error_rate.canary <= 0.5
    assert bad.error_rate.stable == 0.0
    assert bad.p95_ms.canary is not None and 300 <= bad.p95_ms.canary <= 500
    assert bad.p95_ms.stable is not None and bad.p95_ms.stable <= 50
    lines = breaches(bad)
    assert lines[0].startswith("canary error rate ") and "(stable 0.00%)" in lines[0]
    assert lines[1].startswith("canary p95 ") and "≥ SLO 300 ms (stable " in lines[1]
    assert describe(bad)[0].startswith("Error rate: canary ")


@pytest.mark.timeout(120)
async def test_evidence_link_graphs_canary_and_stable(
    metrics: PrometheusMetrics, prometheus: PromProcess
) -> None:
    evidence = await poll_evidence(
        metrics,
        "with error rates",
        lambda e: None not in (e.error_rate.canary, e.error_rate.stable),
    )
    assert evidence.graph_url is not None
    url = urllib.parse.urlsplit(evidence.graph_url)
    assert f"{url.scheme}://{url.netloc}" == prometheus.url and url.path == "/graph"
    params = urllib.parse.parse_qs(url.query)
    assert params["g0.tab"] == ["0"] and params["g0.range_input"] == ["1h"]
    [expr] = params["g0.expr"]
    series = await metrics.instant(expr)
    assert sorted(labels["version"] for labels, _ in series) == ["canary", "stable"]


# ── errors ──────────────────────────────────────────────────────────────────────────


@pytest.mark.timeout(120)
async def test_bad_queries_are_invalid_requests_with_prometheus_words(
    metrics: PrometheusMetrics,
) -> None:
    query = "sum(rate(http_requests_total[1m])"
    with pytest.raises(QueryRejected) as info:
        await metrics.instant(query)
    assert isinstance(info.value, InvalidRequest)
    assert info.value.error_type == "bad_data"
    assert "parse error" in info.value.error
    assert info.value.query == query
    assert info.value.error in info.value.message and query in info.value.message

    # 422 execution: every series relabelled to the same labelset
    clash = (
        'label_replace(label_replace(http_requests_total{job="payment-router"},'
        ' "version", "x", "", ""), "status", "x", "", "")'
    )
    with pytest.raises(QueryRejected) as info:
        await metrics.instant(clash)
    assert info.value.error_type == "execution"
    assert "same labelset" in info.value.error

    with pytest.raises(InvalidRequest, match="matrix"):
        await metrics.instant("http_requests_total[1m]")
    with pytest.raises(InvalidRequest, match="string"):
        await metrics.instant('"hello"')


@pytest.mark.timeout(120)
async def test_bad_template_gives_partial_evidence(metrics: PrometheusMetrics) -> None:
    evidence = await evidence_of(metrics, {"latency_p99_ms": 'rate(x{job="{job}"[1m])'})
    assert evidence.available
    assert evidence.p99_ms.canary is None and evidence.p99_ms.stable is None
    assert evidence.detail.startswith("no data for p99 (canary), p99 (stable): ")
    assert "Prometheus rejected the query: " in evidence.detail
    assert 'rate(x{job="payment-router"[1m])' in evidence.detail
    assert describe(evidence)[-1] == evidence.detail

    switched_off = await evidence_of(metrics, {"latency_p99_ms": None})
    assert switched_off.available and switched_off.detail == ""
    assert switched_off.p99_ms.canary is None

    names = ("error_rate", "latency_p95_ms", "latency_p99_ms")
    nothing_valid = await evidence_of(metrics, dict.fromkeys(names, "sum("))
    assert not nothing_valid.available
    assert nothing_valid.detail.startswith("Prometheus queries failed: Prometheus rejected")

    with pytest.raises(InvalidRequest, match="Unknown Prometheus query template 'p50'"):
        await evidence_of(metrics, {"p50": "x"})


@pytest.mark.timeout(120)
async def test_stopped_prometheus_and_closed_port_are_unreachable(
    tmp_path: Path,
) -> None:
    prom = start_prometheus(tmp_path / "short-lived", scrape_target=None)
    try:
        async with PrometheusMetrics(base_url=prom.url, timeout=2.0) as m:
            assert await m.instant("1") == [({}, 1.0)]
            prom.stop()
            with pytest.raises(Unreachable) as info:
                await m.instant("1")
            assert info.value.service == "Prometheus"
            assert prom.url in info.value.detail
            started = time.monotonic()
            evidence = await evidence_of(m)
            assert time.monotonic() - started < 2.0
    finally:
        prom.stop()
    assert not evidence.available
    assert (
        evidence.detail
        == f"Prometheus unreachable: cannot connect to {prom.url}: connection refused"
    )
    assert describe(evidence) == [evidence.detail]
    assert breaches(evidence) == []

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with PrometheusMetrics(base_url=closed, timeout=2.0) as m:
        started = time.monotonic()
        evidence = await evidence_of(m)
        assert time.monotonic() - started < 2.0
    assert not evidence.available and "unreachable" in evidence.detail

    async with PrometheusMetrics(base_url="http://prometheus.invalid:9090") as m:
        with pytest.raises(
            Unreachable, match=r"cannot connect to http://prometheus\.invalid:9090: "
        ):
            await m.instant("1")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, name="silent", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.timeout(60)
async def test_silent_server_times_out_within_the_timeout(silent_server: str) -> None:
    async with PrometheusMetrics(base_url=silent_server, timeout=1.0) as m:
        started = time.monotonic()
        evidence = await evidence_of(m)
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 1.5  # six queries, bounded together
        assert not evidence.available
        assert evidence.detail == "Prometheus unreachable: timed out after 1 s"

        started = time.monotonic()
        with pytest.raises(Unreachable, match="timed out after 1 s"):
            await m.instant("1")
        assert time.monotonic() - started < 1.5


# ── wire shapes a real Prometheus will not produce on demand ──────────────────────────


@contextlib.asynccontextmanager
async def mocked(
    handler: httpx.MockTransport, *, timeout: float = 2.0
) -> AsyncIterator[PrometheusMetrics]:
    async with httpx.AsyncClient(transport=handler) as client:
        yield PrometheusMetrics(base_url="http://prom.test:9090", timeout=timeout, client=client)


@pytest.mark.parametrize(
    ("response", "error", "delay", "text"),
    [
        pytest.param(
            httpx.Response(
                503,
                headers={"Retry-After": "5"},
                json={"status": "error", "errorType": "timeout", "error": "query timed out"},
            ),
            Unreachable,
            5.0,
            "Prometheus is unreachable: HTTP 503: timeout: query timed out",
            id="503-retry-after",
        ),
        pytest.param(
            httpx.Response(502, text="<html>bad gateway</html>"),
            Unreachable,
            None,
            "Prometheus is unreachable: HTTP 502",
            id="502-proxy",
        ),
        pytest.param(
            httpx.Response(429, headers={"Retry-After": "2.5"}, text="slow down"),
            TemporaryError,
            2.5,
            "Prometheus rate-limited the query; retry in 2.5 s",
            id="429",
        ),
        pytest.param(
            httpx.Response(401, text="Unauthorized"),
            Forbidden,
            None,
            "Prometheus refused rollbot's credentials (403): HTTP 401",
            id="401",
        ),
        pytest.param(
            httpx.Response(404, text="404 page not found"),
            InvalidRequest,
            None,
            "Prometheus answered HTTP 404 at http://prom.test:9090/api/v1/query",
            id="404-wrong-base-url",
        ),
        pytest.param(
            httpx.Response(200, text="<html>login</html>"),
            Unreachable,
            None,
            "HTTP 200 without the API's JSON envelope",
            id="200-not-json",
        ),
    ],
)
async def test_status_translation(
    response: httpx.Response, error: type[Exception], delay: float | None, text: str
) -> None:
    async with mocked(httpx.MockTransport(lambda request: response)) as m:
        with pytest.raises(error) as info:
            await m.instant("up")
    assert type(info.value) is error
    assert text in str(info.value)
    assert getattr(info.value, "delay", None) == delay
    if response.status_code == 429:
        assert not isinstance(info.value, Unreachable)


async def test_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    transport = httpx.MockTransport(lambda r: httpx.Response(503, headers={"Retry-After": when}))
    async with mocked(transport) as m:
        with pytest.raises(Unreachable) as info:
            await m.instant("up")
    assert info.value.delay is not None and 25 <= info.value.delay <= 30


async def test_one_slow_query_leaves_partial_evidence_within_the_timeout() -> None:
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        sent.append(query)
        assert request.url.params["timeout"] == "0.5"
        if query.startswith("histogram_quantile(0.99") and 'version="canary"' in query:
            await asyncio.sleep(30)  # cancelled by evidence()'s overall bound
        value = "0.1" if query.startswith("sum(") else "120"
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]},
            },
        )

    async with mocked(httpx.MockTransport(handler), timeout=0.5) as m:
        started = time.monotonic()
        evidence = await evidence_of(m)
        elapsed = time.monotonic() - started
    assert len(sent) == 6
    assert 0.45 <= elapsed < 1.0
    assert evidence.available
    assert (evidence.error_rate.canary, evidence.error_rate.stable) == (0.1, 0.1)
    assert (evidence.p99_ms.canary, evidence.p99_ms.stable) == (None, 120.0)
    assert evidence.detail == (
        "no data for p99 (canary): Prometheus is unreachable: timed out after 0.5 s"
    )


# ── templates and links ─────────────────────────────────────────────────────────────


def test_render_replaces_only_the_placeholders() -> None:
    template = 'sum(rate(x{job="{job}",version="{version}",status=~"5.."}[1m])) by (le)'
    assert render(template, job="payment-router", version="canary") == (
        'sum(rate(x{job="payment-router",version="canary",status=~"5.."}[1m])) by (le)'
    )
    # label values cannot break out of their string literal
    assert render('x{job="{job}"}', job='a"} or up{b="', version="") == (
        r'x{job="a\"} or up{b=\""}'
    )


async def test_graph_link_shape() -> None:
    async with PrometheusMetrics(base_url="http://prometheus:9090/") as m:
        link = m.graph_link('sum(rate(http_requests_total{job="payment-router"}[1m]))')
    assert link == (
        "http://prometheus:9090/graph?g0.expr=sum%28rate%28http_requests_total%7Bjob%3D%22"
        "payment-router%22%7D%5B1m%5D%29%29&g0.tab=0&g0.range_input=1h"
    )
    async with PrometheusMetrics(
        base_url="http://prometheus.monitoring:9090", graph_url="https://prom.example.com/"
    ) as m:
        assert m.graph_link("up == 0").startswith(
            "https://prom.example.com/graph?g0.expr=up+%3D%3D+0&"
        )
