"""What the metrics say, in words for a card.

Pure: reads an `Evidence` (filled by the Prometheus adapter) and says which SLOs the canary
breaches, how each metric compares with stable, and how long the breach has lasted.

Formats: error rates are fractions (0..1) shown as percentages with two decimals
("2.35%"); latencies are milliseconds shown as integers ("412 ms"); a missing value is
"no data"; +Inf latency (the quantile fell into histogram_quantile's +Inf bucket) is "∞ ms".
A metric breaches its SLO when the canary value is at or above it, as Argo Rollouts'
`successCondition: result[0] < 0.02` fails at 0.02.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from bot.core.model import Evidence, MetricPair

NO_DATA = "no data"


def percent(value: float | None) -> str:
    """0.0235 → "2.35%"; None → "no data"."""
    if value is None:
        return NO_DATA
    if math.isinf(value):
        return "∞%" if value > 0 else "-∞%"
    return f"{value * 100:.2f}%"


def millis(value: float | None) -> str:
    """412.4 → "412 ms"; None → "no data"."""
    if value is None:
        return NO_DATA
    if math.isinf(value):
        return "∞ ms" if value > 0 else "-∞ ms"
    return f"{round(value)} ms"


# (label in a breach, label in describe(), pair, SLO, formatter)
_Row = tuple[str, str, MetricPair, float | None, Callable[[float | None], str]]


def _rows(evidence: Evidence) -> list[_Row]:
    return [
        ("error rate", "Error rate", evidence.error_rate, evidence.slo_error_rate, percent),
        ("p95", "p95 latency", evidence.p95_ms, evidence.slo_p95_ms, millis),
        ("p99", "p99 latency", evidence.p99_ms, evidence.slo_p99_ms, millis),
    ]


def _breached(value: float | None, slo: float | None) -> bool:
    return value is not None and slo is not None and value >= slo


def breaches(evidence: Evidence) -> list[str]:
    """One line per SLO the canary is at or over, with stable alongside.

    "canary p95 412 ms ≥ SLO 300 ms (stable 120 ms)"; when stable is over the SLO too the
    line says so, since then the canary may not be the cause. Empty when the evidence is
    unavailable, or nothing breaches.
    """
    if not evidence.available:
        return []
    lines = []
    for label, _, pair, slo, fmt in _rows(evidence):
        if not _breached(pair.canary, slo):
            continue
        also = ", over SLO too" if _breached(pair.stable, slo) else ""
        lines.append(
            f"canary {label} {fmt(pair.canary)} ≥ SLO {fmt(slo)} (stable {fmt(pair.stable)}{also})"
        )
    return lines


def describe(evidence: Evidence) -> list[str]:
    """Lines for a card: each metric, canary against stable, with its SLO.

    "Error rate: canary 5.00% · stable 0.10% (SLO < 2.00%)". Unavailable evidence gives one
    line saying why; partial evidence ends with a line naming what is missing.
    """
    if not evidence.available:
        return [evidence.detail or "Metrics unavailable"]
    lines = []
    for _, title, pair, slo, fmt in _rows(evidence):
        line = f"{title}: canary {fmt(pair.canary)} · stable {fmt(pair.stable)}"
        if slo is not None:
            line += f" (SLO < {fmt(slo)})"
        lines.append(line)
    if evidence.detail:
        lines.append(evidence.detail)
    return lines


def breach_duration(first_breach_at: datetime | None, now: datetime) -> str:
    """How long the breach has lasted: "for 45 s", "for 6 min", "for 2 h 5 min", "for 3 d 4 h".

    "" when unknown; "just now" when `first_breach_at` is not before `now` (clock skew).
    Whole units, rounded down.
    """
    if first_breach_at is None:
        return ""
    seconds = int((now - first_breach_at).total_seconds())
    if seconds <= 0:
        return "just now"
    if seconds < 60:
        return f"for {seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"for {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"for {hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"for {days} d" + (f" {hours} h" if hours else "")
