"""Prometheus, over its HTTP API (`/api/v1/query`), with httpx: the only place that talks to it.

Two jobs: `instant()` runs one PromQL instant query and returns `(labels, value)` pairs;
`evidence()` runs the canary-vs-stable queries for a service and never raises for
Prometheus trouble (metrics decorate a card; a slow or down Prometheus must not delay it).

Errors are translated at this border (instant() only; evidence() folds them into
`Evidence.detail`):

    connection refused, DNS failure, dropped connection   → Unreachable("Prometheus", …)
    no answer within `timeout` seconds                     → Unreachable(…, "timed out after N s")
    HTTP 5xx (503: query timed out or aborted)             → Unreachable(…, "HTTP 503: <error>",
                                                              delay=Retry-After)
    HTTP 429                                               → TemporaryError(delay=Retry-After)
    HTTP 400 bad_data / 422 execution                      → QueryRejected, an InvalidRequest
                                                              with Prometheus' own error text
                                                              and the query
    HTTP 401 / 403                                         → Forbidden("Prometheus", …)
    any other status, or a body that is not the API's JSON → InvalidRequest / Unreachable

Values: Prometheus sends sample values as strings ("0.25", "NaN", "+Inf"). NaN samples
(0/0: no traffic) are dropped, so they read as "no data"; ±Inf are kept as floats
(histogram_quantile answers +Inf when the quantile falls into the +Inf bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.adapters._http import connect_reason, retry_after
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    RollbotError,
    TemporaryError,
    Unreachable,
)
from bot.core.model import Evidence, MetricPair

SERVICE = "Prometheus"

#: The metric names `evidence()` fills, with their default PromQL templates. The
#: placeholders `{job}` and `{version}` are replaced (as PromQL string contents); every other
#: brace is PromQL's own.
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "error_rate": (
        'sum(rate(http_requests_total{job="{job}",version="{version}",status=~"5.."}[1m]))'
        ' / sum(rate(http_requests_total{job="{job}",version="{version}"}[1m]))'
    ),
    "latency_p95_ms": (
        "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket"
        '{job="{job}",version="{version}"}[1m])) by (le)) * 1000'
    ),
    "latency_p99_ms": (
        "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket"
        '{job="{job}",version="{version}"}[1m])) by (le)) * 1000'
    ),
}

VERSIONS = ("canary", "stable")

#: Queries whose URL-encoded form is longer than this go as a POST form body instead, as the
#: API allows, so that no proxy or server URL limit can cut them.
MAX_GET_QUERY_CHARS = 2000

Sample = tuple[dict[str, str], float]


def render(template: str, *, job: str, version: str) -> str:
    """`template` with `{job}` and `{version}` replaced, escaped for a PromQL string literal.

    Only those two placeholders are touched: PromQL's own braces (`{status=~"5.."}`) stay.
    """
    return template.replace("{job}", _promql_string(job)).replace(
        "{version}", _promql_string(version)
    )


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resolve_templates(templates: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """The default templates overridden by `templates`; None switches a metric off.

    Unknown names raise InvalidRequest at once (a configuration mistake, not an outage).
    """
    resolved: dict[str, str | None] = dict(DEFAULT_TEMPLATES)
    for name, template in (templates or {}).items():
        if name not in DEFAULT_TEMPLATES:
            known = ", ".join(DEFAULT_TEMPLATES)
            raise InvalidRequest(f"Unknown Prometheus query template {name!r}; known: {known}.")
        resolved[name] = template
    return resolved


class QueryRejected(InvalidRequest):
    """Prometheus refused the query (400 bad_data, 422 execution): its own words, and the query."""

    def __init__(self, query: str, error_type: str, error: str) -> None:
        super().__init__(f"Prometheus rejected the query: {error} (query: {query})")
        self.query, self.error_type, self.error = query, error_type, error


@dataclass(frozen=True, slots=True)
class _Outcome:
    name: str
    version: str
    value: float | None = None
    error: RollbotError | None = None


class PrometheusMetrics:
    """Reads canary-vs-stable metrics from Prometheus.

    `timeout` (seconds) bounds each request and, in `evidence()`, all of its queries
    together. `graph_url` is where people reach Prometheus for graph links (default:
    `base_url`). Pass `client` to share an httpx.AsyncClient (then `aclose()` leaves it
    open). `observer` times each query (`bot.adapters.calls`).
    """

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 2.0,
        graph_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.graph_base_url = (graph_url or base_url).rstrip("/")
        self.timeout = timeout
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self.observer = observer

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> PrometheusMetrics:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ── instant queries ───────────────────────────────────────────────────────────────

    async def instant(self, query: str, *, at: datetime | None = None) -> list[Sample]:
        """Evaluate `query` at `at` (default: Prometheus' now); `(labels, value)` per series.

        A scalar result comes back as one pair with empty labels. NaN samples are dropped.
        Raises Unreachable, TemporaryError, InvalidRequest or Forbidden (module docstring).
        """
        params = {"query": query, "timeout": _duration(self.timeout)}
        if at is not None:
            params["time"] = _timestamp(at)
        url = f"{self.base_url}/api/v1/query"
        with timed(self.observer) as call:
            try:
                if len(urllib.parse.urlencode(params)) > MAX_GET_QUERY_CHARS:
                    response = await self._client.post(url, data=params, timeout=self.timeout)
                else:
                    response = await self._client.get(url, params=params, timeout=self.timeout)
            except httpx.TimeoutException as e:
                raise Unreachable(SERVICE, f"timed out after {self.timeout:g} s") from e
            except httpx.ConnectError as e:
                reason = connect_reason(e)
                raise Unreachable(SERVICE, f"cannot connect to {self.base_url}: {reason}") from e
            except httpx.TransportError as e:
                raise Unreachable(SERVICE, f"{type(e).__name__} from {self.base_url}: {e}") from e
            call.status(response.status_code)
        return _parse(response, query)

    # ── evidence for a card ───────────────────────────────────────────────────────────

    async def evidence(
        self,
        *,
        job: str,
        templates: Mapping[str, str | None] | None = None,
        slo_error_rate: float | None,
        slo_p95_ms: float | None,
        slo_p99_ms: float | None,
        now: datetime,
    ) -> Evidence:
        """Canary against stable for `job`: error rate, p95 and p99, never raising for outages.

        The (up to) six queries run concurrently and are bounded by `timeout` seconds all
        together; queries still running then are cancelled. When no query answers,
        `available` is False and `detail` says why ("Prometheus unreachable: timed out after
        2 s"); when some fail, the others are returned and `detail` names the missing ones.
        Queries are evaluated at Prometheus' own now (so clock skew cannot empty them);
        `now` is recorded as `queried_at`. Unknown template names raise InvalidRequest.
        """
        resolved = resolve_templates(templates)
        queries = [
            (name, version, render(template, job=job, version=version))
            for name, template in resolved.items()
            if template is not None
            for version in VERSIONS
        ]
        outcomes = await self._run_bounded(queries)
        failures = [o for o in outcomes if o.error is not None]
        available = not (outcomes and len(failures) == len(outcomes))
        values = {(o.name, o.version): o.value for o in outcomes if o.error is None}

        def pair(name: str) -> MetricPair:
            return MetricPair(values.get((name, "canary")), values.get((name, "stable")))

        return Evidence(
            available=available,
            detail=_partial_summary(failures) if available else _failure_summary(failures),
            error_rate=pair("error_rate"),
            p95_ms=pair("latency_p95_ms"),
            p99_ms=pair("latency_p99_ms"),
            slo_error_rate=slo_error_rate,
            slo_p95_ms=slo_p95_ms,
            slo_p99_ms=slo_p99_ms,
            graph_url=self._comparison_graph(resolved["error_rate"], job),
            queried_at=now,
        )

    async def _run_bounded(self, queries: list[tuple[str, str, str]]) -> list[_Outcome]:
        """Run the queries concurrently; whatever has not answered after `timeout` s is
        cancelled and counted as timed out."""
        if not queries:
            return []
        tasks = [asyncio.ensure_future(self._one(n, v, q)) for n, v, q in queries]
        try:
            await asyncio.wait(tasks, timeout=self.timeout)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        timed_out = Unreachable(SERVICE, f"timed out after {self.timeout:g} s")
        return [
            task.result() if not task.cancelled() else _Outcome(n, v, error=timed_out)
            for task, (n, v, _) in zip(tasks, queries, strict=True)
        ]

    async def _one(self, name: str, version: str, query: str) -> _Outcome:
        try:
            samples = await self.instant(query)
        except RollbotError as e:
            return _Outcome(name, version, error=e)
        # The templates aggregate to one series; if a custom one does not, take the worst.
        values = [value for _, value in samples]
        return _Outcome(name, version, value=max(values) if values else None)

    # ── links ─────────────────────────────────────────────────────────────────────────

    def graph_link(self, expr: str) -> str:
        """A link to Prometheus' graph page for `expr`, over the last hour."""
        query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "1h"})
        return f"{self.graph_base_url}/graph?{query}"

    def _comparison_graph(self, template: str | None, job: str) -> str | None:
        """One graph with the canary and the stable series, labelled by `version`."""
        if template is None:
            return None
        series = [
            f'label_replace({render(template, job=job, version=v)}, "version", "{v}", "", "")'
            for v in VERSIONS
        ]
        return self.graph_link(" or ".join(series))


# ── response parsing ──────────────────────────────────────────────────────────────────


def _parse(response: httpx.Response, query: str) -> list[Sample]:
    status = response.status_code
    body = _json(response)
    error = ""
    if isinstance(body, dict) and body.get("status") == "error":
        error = f"{body.get('errorType', 'error')}: {body.get('error', '')}".strip()
    if status == 429:
        delay = retry_after(response)
        raise TemporaryError(
            f"Prometheus rate-limited the query; retry in {_seconds(delay)}", delay=delay
        )
    if status >= 500:
        detail = f"HTTP {status}" + (f": {error}" if error else "")
        raise Unreachable(SERVICE, detail, delay=retry_after(response))
    if status in (401, 403):
        raise Forbidden(SERVICE, f"HTTP {status}" + (f": {error}" if error else ""))
    if status in (400, 422):
        if isinstance(body, dict):
            raise QueryRejected(
                query, str(body.get("errorType", "")), str(body.get("error", f"HTTP {status}"))
            )
        raise QueryRejected(query, "", f"HTTP {status}")
    if status >= 300:
        raise InvalidRequest(
            f"Prometheus answered HTTP {status} at {response.request.url.copy_with(query=None)}"
            " (is the Prometheus URL right?)"
        )
    if not isinstance(body, dict) or body.get("status") != "success":
        raise Unreachable(SERVICE, f"HTTP {status} without the API's JSON envelope")
    try:
        data = body["data"]
        result_type = data["resultType"]
        result = data["result"]
        if result_type == "vector":
            samples = []
            for item in result:
                value = _value(item["value"])
                if value is not None:
                    samples.append(({str(k): str(v) for k, v in item["metric"].items()}, value))
            return samples
        if result_type == "scalar":
            value = _value(result)
            return [] if value is None else [({}, value)]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise Unreachable(SERVICE, f"answered a malformed result ({type(e).__name__}: {e})") from e
    raise InvalidRequest(
        f"Prometheus answered a {result_type} for an instant query that must give a vector or "
        f"a scalar (query: {query})"
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _value(pair: Any) -> float | None:
    """[<unix time>, "<value>"] → float, None for NaN."""
    value = float(pair[1])  # Go's strconv formatting: "NaN", "+Inf", "-Inf", "1e-05", …
    return None if math.isnan(value) else value


def _seconds(delay: float | None) -> str:
    return "?" if delay is None else f"{delay:g} s"


def _duration(seconds: float) -> str:
    # Prometheus reads a bare number as seconds (web/api/v1 parseDuration).
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _timestamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{at.timestamp():.3f}"


_LABELS = {"error_rate": "error rate", "latency_p95_ms": "p95", "latency_p99_ms": "p99"}


def _failure_summary(failures: list[_Outcome]) -> str:
    """Why no query answered: the first error, said once."""
    error = failures[0].error
    if isinstance(error, Unreachable):
        return f"Prometheus unreachable: {error.detail}"
    return f"Prometheus queries failed: {error.message if error else 'unknown error'}"


def _partial_summary(failures: list[_Outcome]) -> str:
    if not failures:
        return ""
    missing = ", ".join(f"{_LABELS.get(o.name, o.name)} ({o.version})" for o in failures)
    reasons = dict.fromkeys(o.error.message if o.error else "unknown error" for o in failures)
    return f"no data for {missing}: {'; '.join(reasons)}"
