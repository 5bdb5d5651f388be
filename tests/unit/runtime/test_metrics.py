"""bot.runtime.metrics.Metrics: what is read at scrape time, and the call observers.

Aspects under test:
- ``rollbot_work_queue_depth`` is the work queue's waiting jobs at each scrape: it rises as
  jobs queue behind a busy worker and falls to 0 as they run;
- the outbox gauges are read at `refresh` (before each scrape); a read that fails or does
  not answer within the scrape-time budget leaves NaN (unknown), never the last value;
- an adapter's observer counts its service's calls and errors by kind, every kind's series
  starting at 0; an unknown kind is counted as ``other``;
- README's metrics table lists every metric `Metrics` defines, with its type and labels,
  and nothing else.
"""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from bot.runtime import metrics as metrics_module
from bot.runtime.metrics import Metrics
from bot.runtime.work import WorkQueue
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(10)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_the_work_queue_depth_is_read_at_each_scrape() -> None:
    metrics = Metrics()
    work = WorkQueue(workers=1)
    metrics.watch_work_queue(lambda: work.pending)
    gate = asyncio.Event()
    started = asyncio.Event()

    async def blocked() -> None:
        started.set()
        await gate.wait()

    assert sample(metrics, "rollbot_work_queue_depth") == 0
    for _ in range(3):
        work.submit(blocked)
    await started.wait()  # the first runs; two wait behind it
    assert sample(metrics, "rollbot_work_queue_depth") == 2
    gate.set()
    await eventually(lambda: sample(metrics, "rollbot_work_queue_depth") == 0)
    await work.close(drain_timeout=1)


async def test_the_outbox_is_read_at_refresh_and_unknown_when_it_cannot_be(monkeypatch) -> None:
    metrics = Metrics()
    await metrics.refresh()  # nothing to read yet: nothing set
    answers: list[object] = [(3, 42.5), RuntimeError("database away"), "hang", (0, 0.0)]

    async def read() -> tuple[int, float]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer == "hang":
            await asyncio.Event().wait()
        assert isinstance(answer, tuple)
        return answer

    metrics.watch_outbox(read)
    monkeypatch.setattr(metrics_module, "SCRAPE_READ_SECONDS", 0.05)
    await metrics.refresh()
    assert sample(metrics, "rollbot_outbox_pending") == 3
    assert sample(metrics, "rollbot_outbox_oldest_pending_age_seconds") == 42.5
    for _ in range(2):  # raises, then does not answer in time
        await metrics.refresh()
        assert math.isnan(sample(metrics, "rollbot_outbox_pending") or 0)
        assert math.isnan(sample(metrics, "rollbot_outbox_oldest_pending_age_seconds") or 0)
    await metrics.refresh()
    assert sample(metrics, "rollbot_outbox_pending") == 0
    assert sample(metrics, "rollbot_outbox_oldest_pending_age_seconds") == 0


def test_an_observer_counts_its_services_calls_and_errors() -> None:
    metrics = Metrics()
    slack = metrics.outbound("slack")
    errors = "rollbot_outbound_errors_total"
    for kind in ("unreachable", "throttled", "forbidden", "refused", "other"):
        assert sample(metrics, errors, service="slack", error=kind) == 0
    assert sample(metrics, errors, service="jira", error="other") is None  # not talked to
    slack.observe(0.2, None)
    slack.observe(1.5, "forbidden")
    slack.observe(0.1, "teapot")
    count = "rollbot_outbound_request_duration_seconds_count"
    assert sample(metrics, count, service="slack") == 3
    assert sample(metrics, errors, service="slack", error="forbidden") == 1
    assert sample(metrics, errors, service="slack", error="other") == 1


README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_table_lists_every_metric_with_its_type_and_labels() -> None:
    metrics = Metrics()
    defined: dict[str, tuple[str, set[str]]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            defined[name] = (metric._type, set(metric._labelnames))
    text = README.read_text()
    table = text[text.index("### Metrics") : text.index("## Deploying")]
    rows = re.findall(r"^\| `(rollbot_\w+)` \| (\w+) \|([^|]*)\|", table, re.MULTILINE)
    listed = {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}
    assert listed == defined
    assert len(defined) >= 25
