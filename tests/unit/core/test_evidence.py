"""bot.core.evidence: metrics in words for a card.

Aspects under test:
- breaches(): one line per SLO the canary is at or over (≥, as an Argo `< x` condition
  fails at x), with stable alongside and flagged when stable is over too; nothing when the
  SLO is unset, the canary has no data, or the evidence is unavailable;
- describe(): canary · stable per metric, percentages with 2 decimals, ms as integers,
  "no data" for None, ∞ for +Inf, SLO shown only when set, the unavailability reason alone,
  and a partial-data note last;
- breach_duration(): seconds / minutes / hours / days, rounded down, "" when unknown and
  "just now" for a breach that starts at or after now.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.evidence import breach_duration, breaches, describe, millis, percent
from bot.core.model import Evidence, MetricPair

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
INF = math.inf


def ev(
    error: tuple[float | None, float | None] = (None, None),
    p95: tuple[float | None, float | None] = (None, None),
    p99: tuple[float | None, float | None] = (None, None),
    *,
    slo: tuple[float | None, float | None, float | None] = (0.02, 300, 200),
    detail: str = "",
) -> Evidence:
    return Evidence(
        available=True,
        detail=detail,
        error_rate=MetricPair(*error),
        p95_ms=MetricPair(*p95),
        p99_ms=MetricPair(*p99),
        slo_error_rate=slo[0],
        slo_p95_ms=slo[1],
        slo_p99_ms=slo[2],
    )


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        pytest.param(ev(), [], id="no-data"),
        pytest.param(ev((0.001, 0.001), (120, 118), (150, 149)), [], id="healthy"),
        pytest.param(
            ev(p95=(412.4, 120.2)), ["canary p95 412 ms ≥ SLO 300 ms (stable 120 ms)"], id="p95"
        ),
        pytest.param(
            ev(error=(0.02, 0.001)),
            ["canary error rate 2.00% ≥ SLO 2.00% (stable 0.10%)"],
            id="error-rate-at-slo-is-a-breach",
        ),
        pytest.param(ev(error=(0.0199, 0.0)), [], id="just-under"),
        pytest.param(
            ev((0.5, None), (900, 100), (INF, 150)),
            [
                "canary error rate 50.00% ≥ SLO 2.00% (stable no data)",
                "canary p95 900 ms ≥ SLO 300 ms (stable 100 ms)",
                "canary p99 ∞ ms ≥ SLO 200 ms (stable 150 ms)",
            ],
            id="all-three-in-order",
        ),
        pytest.param(
            ev(p99=(450, 420)),
            ["canary p99 450 ms ≥ SLO 200 ms (stable 420 ms, over SLO too)"],
            id="stable-over-too",
        ),
        pytest.param(ev(p95=(None, 900)), [], id="stable-only-is-not-a-canary-breach"),
        pytest.param(ev((0.9, 0), (900, 0), (900, 0), slo=(None, None, None)), [], id="no-slo"),
        pytest.param(
            ev((0.9, 0), (900, 0), (900, 0), slo=(None, 300, None)),
            ["canary p95 900 ms ≥ SLO 300 ms (stable 0 ms)"],
            id="only-p95-slo",
        ),
    ],
)
def test_breaches(evidence: Evidence, expected: list[str]) -> None:
    assert breaches(evidence) == expected


def test_breaches_of_unavailable_evidence_are_empty() -> None:
    down = Evidence(
        available=False,
        detail="Prometheus unreachable: timed out after 2 s",
        p95_ms=MetricPair(900, 100),
        slo_p95_ms=300,
    )
    assert breaches(down) == []


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        pytest.param(
            ev((0.05, 0.001), (412.4, 120.6), (None, None)),
            [
                "Error rate: canary 5.00% · stable 0.10% (SLO < 2.00%)",
                "p95 latency: canary 412 ms · stable 121 ms (SLO < 300 ms)",
                "p99 latency: canary no data · stable no data (SLO < 200 ms)",
            ],
            id="mixed",
        ),
        pytest.param(
            ev((0.0, 0.12345), (INF, 0.4), (1999.5, 0), slo=(None, None, None)),
            [
                "Error rate: canary 0.00% · stable 12.35%",
                "p95 latency: canary ∞ ms · stable 0 ms",
                "p99 latency: canary 2000 ms · stable 0 ms",
            ],
            id="no-slo-inf-rounding",
        ),
        pytest.param(
            ev(
                (0.03, 0.0),
                detail="no data for p99 (canary), p99 (stable): Prometheus is unreachable: "
                "timed out after 2 s",
            ),
            [
                "Error rate: canary 3.00% · stable 0.00% (SLO < 2.00%)",
                "p95 latency: canary no data · stable no data (SLO < 300 ms)",
                "p99 latency: canary no data · stable no data (SLO < 200 ms)",
                "no data for p99 (canary), p99 (stable): Prometheus is unreachable: "
                "timed out after 2 s",
            ],
            id="partial",
        ),
        pytest.param(
            Evidence(available=False, detail="Prometheus unreachable: timed out after 2 s"),
            ["Prometheus unreachable: timed out after 2 s"],
            id="unavailable",
        ),
        pytest.param(Evidence(available=False, detail=""), ["Metrics unavailable"], id="no-why"),
    ],
)
def test_describe(evidence: Evidence, expected: list[str]) -> None:
    assert describe(evidence) == expected


@pytest.mark.parametrize(
    ("value", "pct", "ms"),
    [
        (None, "no data", "no data"),
        (0.0, "0.00%", "0 ms"),
        (0.00004, "0.00%", "0 ms"),
        (0.02, "2.00%", "0 ms"),
        (1.0, "100.00%", "1 ms"),
        (299.6, "29960.00%", "300 ms"),
        (INF, "∞%", "∞ ms"),
        (-INF, "-∞%", "-∞ ms"),
    ],
)
def test_formats(value: float | None, pct: str, ms: str) -> None:
    assert percent(value) == pct
    assert millis(value) == ms


@pytest.mark.parametrize(
    ("ago", "expected"),
    [
        (None, ""),
        (timedelta(seconds=-30), "just now"),
        (timedelta(0), "just now"),
        (timedelta(seconds=1), "for 1 s"),
        (timedelta(seconds=59.9), "for 59 s"),
        (timedelta(seconds=60), "for 1 min"),
        (timedelta(minutes=6, seconds=59), "for 6 min"),
        (timedelta(minutes=59, seconds=59), "for 59 min"),
        (timedelta(hours=1), "for 1 h"),
        (timedelta(hours=2, minutes=5, seconds=30), "for 2 h 5 min"),
        (timedelta(hours=23, minutes=59), "for 23 h 59 min"),
        (timedelta(days=1), "for 1 d"),
        (timedelta(days=3, hours=4, minutes=59), "for 3 d 4 h"),
    ],
)
def test_breach_duration(ago: timedelta | None, expected: str) -> None:
    first = None if ago is None else NOW - ago
    assert breach_duration(first, NOW) == expected
