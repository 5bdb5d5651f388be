"""The benchmarks' charts (issue 17): PNGs in docs/bench/, drawn with matplotlib's Agg
backend (no display), shown by README's *Performance* section.

Three shapes cover every bench:

    cdf(name, title, samples, unit)          latency distributions, one line per series
    bars(name, title, values, unit)          one figure per series, rollbot beside its baseline
    timeline(name, title, series, ...)       a quantity over time (RSS, calls per second)

Each returns the path written. A series name that starts with "baseline" is drawn grey, so
the eye finds rollbot's line first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

CHARTS = Path(__file__).resolve().parents[2] / "docs" / "bench"

_GREY = "#8c8c8c"


def _colour(label: str, index: int) -> str:
    if label.lower().startswith("baseline"):
        return _GREY
    return f"C{index}"


def _save(fig: plt.Figure, name: str) -> Path:
    CHARTS.mkdir(parents=True, exist_ok=True)
    path = CHARTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cdf(name: str, title: str, samples: Mapping[str, Sequence[float]], unit: str) -> Path:
    """Cumulative distributions: for each series, the share of samples at or under x."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (label, values) in enumerate(samples.items()):
        ordered = sorted(values)
        if not ordered:
            continue
        shares = [(k + 1) / len(ordered) for k in range(len(ordered))]
        ax.step(ordered, shares, where="post", label=label, color=_colour(label, i))
    ax.set_title(title)
    ax.set_xlabel(unit)
    ax.set_ylabel("share of samples")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, name)


def bars(name: str, title: str, values: Mapping[str, float], unit: str) -> Path:
    """Horizontal bars, one per labelled figure, each with its value written at its end."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(values), 1)))
    labels = list(values)
    ax.barh(
        labels,
        [values[k] for k in labels],
        color=[_colour(k, i) for i, k in enumerate(labels)],
    )
    for i, label in enumerate(labels):
        ax.text(values[label], i, f" {values[label]:g} {unit}", va="center", fontsize="small")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(unit)
    ax.margins(x=0.25)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, name)


def timeline(
    name: str,
    title: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    limit: float | None = None,
    limit_label: str = "limit",
) -> Path:
    """Lines over time: each series is (xs, ys); `limit` draws a dashed horizontal line."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (label, (xs, ys)) in enumerate(series.items()):
        ax.plot(list(xs), list(ys), label=label, color=_colour(label, i))
    if limit is not None:
        ax.axhline(limit, linestyle="--", color="#d62728", linewidth=1, label=limit_label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, name)
