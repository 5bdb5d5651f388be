"""rollbot's /metrics, scraped over HTTP from rollbot served over the sims (issue 16).

Aspects under test (each metric moves when its thing happens, read from a real scrape):
- the process, platform and GC collectors and ``rollbot_build_info{version}`` (the
  installed package's version) are there;
- HTTP request durations are labelled by route template: a runbook URL carrying a token,
  a path no route has, a refused Slack request; no raw path, token or invented path
  reaches a label, and every unknown path is the one label ``unmatched``;
- outbound calls: Slack and the Kubernetes API are timed by service, and a Slack 500 and
  a Kubernetes 403 count as errors of their kind (unreachable, forbidden); the error
  series of each service rollbot talks to start at 0;
- the outbox: PagerDuty down while an abort's note and acknowledge wait, the scrape says
  how many wait and that the oldest has waited; PagerDuty back, both drop to 0;
- the abort's verification time is in ``rollbot_action_verification_seconds`` (the name of
  what it measures), labelled with its action and whether it verified;
- `promtool check metrics` (Prometheus' own linter, Debian's prometheus package) passes
  on a real scrape after an abort, a refused call and an unknown path (every metric type
  with labelled series): names, types, units, help texts.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable
from importlib import metadata

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core.errors import Forbidden, Unreachable
from bot.sim.harness import SimWorld
from tests.helpers import eventually
from tests.plugins.peers import require_peer
from tests.plugins.prometheus import promtool_binary

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(key)[label] for (sample, key) in samples if sample == name and label in dict(key)}


async def scrape(world: SimWorld) -> tuple[str, Samples]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{world.url}/metrics")
    assert response.status_code == 200
    return response.text, parse(response.text)


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    binary = promtool_binary()
    require_peer("promtool", binary is not None, "promtool not found (Debian's prometheus)")
    assert binary is not None
    return subprocess.run(
        [binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


async def paused_card(world: SimWorld) -> dict:
    return await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
        timeout=40,
        what="the card with Abort",
    )


async def test_the_collectors_the_build_and_durations_by_route(tmp_path) -> None:
    async with SimWorld(speed=600, workdir=tmp_path) as world:
        token = "eyJzZXJ2aWNlIjoicGF5bWVudC1yb3V0ZXIifQ.c2lnbmF0dXJl"
        async with httpx.AsyncClient(base_url=world.url, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get(f"/runbooks/payment-router?token={token}")).status_code
            for path in ("/wp-admin.php", f"/x/{token}", "/metrics2"):
                assert (await client.get(path)).status_code == 404
            assert (await client.post("/slack/events", content=b"x=1")).status_code == 401
        _, samples = await scrape(world)
    count = "rollbot_http_request_duration_seconds_count"
    routes = label_values(samples, count, "route")
    assert {"/healthz", "/runbooks/{service}", "/slack/events", "unmatched"} <= routes
    assert value(samples, count, route="unmatched") == 3  # three unknown paths, one series
    assert value(samples, count, route="/slack/events") == 1
    assert not any(token in r or "wp-admin" in r or "metrics2" in r for r in routes), routes
    assert all(r == "unmatched" or r.startswith("/") for r in routes)

    assert value(samples, "rollbot_build_info", version=metadata.version("rollbot")) == 1
    for collected in ("process_cpu_seconds_total", "process_open_fds", "python_info"):
        assert any(name == collected for name, _ in samples), collected
    assert any(name == "python_gc_objects_collected_total" for name, _ in samples)


async def test_outbound_calls_and_their_errors_by_service(tmp_path) -> None:
    async with SimWorld(speed=600, workdir=tmp_path) as world:
        await paused_card(world)  # the card posted (Slack), the Rollout read (Kubernetes)
        _, before = await scrape(world)
        count = "rollbot_outbound_request_duration_seconds_count"
        assert {"slack", "kubernetes"} <= label_values(before, count, "service")
        assert (value(before, count, service="slack") or 0) >= 1
        assert (value(before, count, service="kubernetes") or 0) >= 1
        errors = "rollbot_outbound_errors_total"
        for service in ("slack", "kubernetes"):
            kinds = label_values(
                {k: v for k, v in before.items() if ("service", service) in k[1]},
                errors,
                "error",
            )
            assert kinds == {"unreachable", "throttled", "forbidden", "refused", "other"}
        assert label_values(before, errors, "service") == {"slack", "kubernetes"}
        slack_500 = value(before, errors, service="slack", error="unreachable")
        kube_403 = value(before, errors, service="kubernetes", error="forbidden")

        world.slack.force_status("users.info", status=500)
        with pytest.raises(Unreachable):
            await world.rollbot.chat.user_email("U0NOBODY")
        # The watch reads nothing per event: this read of the Rollout takes the 403.
        world.kube.fail_next(1, status=403, path_contains="/namespaces/payments/rollouts")
        with contextlib.suppress(Forbidden):
            await world.rollbot.rollouts.get_state("payments", "payment-router")

        async def counted() -> Samples | None:
            _, after = await scrape(world)
            kube = value(after, errors, service="kubernetes", error="forbidden")
            return after if kube == (kube_403 or 0) + 1 else None

        after = await eventually(counted, timeout=10, what="the 403 counted")
    assert value(after, errors, service="slack", error="unreachable") == (slack_500 or 0) + 1
    assert value(after, count, service="slack") > value(before, count, service="slack")


async def test_the_outbox_backlog_and_the_verification_time_of_an_abort(tmp_path) -> None:
    async with SimWorld(speed=600, workdir=tmp_path, pagerduty=True) as world:
        card = await paused_card(world)

        async def drained() -> Samples | None:
            _, now = await scrape(world)
            age = value(now, "rollbot_outbox_oldest_pending_age_seconds")
            return now if value(now, "rollbot_outbox_pending") == 0 and age == 0 else None

        await world.wait_for(world.pd.events, what="the card's page sent to PagerDuty")
        await eventually(drained, timeout=30, what="nothing left waiting")

        world.pd.set_down(True, status=503)
        assert (await world.click(card, "rollout_abort")).status_code == 200
        await world.wait_for(
            lambda: any("Aborted" in str(r.body) for r in world.slack.responses),
            what="the abort answered (its note and acknowledge then wait for PagerDuty)",
        )

        async def waiting() -> Samples | None:
            _, now = await scrape(world)
            pending = value(now, "rollbot_outbox_pending") or 0
            age = value(now, "rollbot_outbox_oldest_pending_age_seconds") or 0
            return now if pending >= 1 and age > 0 else None

        backed_up = await eventually(waiting, timeout=30, what="the note waiting in the outbox")
        assert (value(backed_up, "rollbot_outbound_errors_total", service="pagerduty",
                      error="unreachable") or 0) >= 1  # fmt: skip

        world.pd.set_down(False)
        after = await eventually(drained, timeout=30, what="the outbox drained")
    verified = value(
        after, "rollbot_action_verification_seconds_count", action="abort", verified="true"
    )
    assert verified == 1
    assert not any(name.startswith("rollbot_action_seconds") for name, _ in after)


async def test_promtool_check_metrics_passes_on_a_real_scrape(tmp_path) -> None:
    binary = promtool_binary()
    require_peer("promtool", binary is not None, "promtool not found (Debian's prometheus)")
    async with SimWorld(speed=600, workdir=tmp_path, pagerduty=True) as world:
        card = await paused_card(world)
        assert (await world.click(card, "rollout_abort")).status_code == 200
        await world.wait_for(
            lambda: any("Aborted" in str(r.body) for r in world.slack.responses),
            what="the abort answered",
        )
        async with httpx.AsyncClient(base_url=world.url, timeout=10) as client:
            await client.get("/nowhere")

        async def counted() -> tuple[str, Samples] | None:
            # The reply goes once the action is settled; its count follows the card's update.
            text, samples = await scrape(world)
            return (
                (text, samples) if any(n == "rollbot_actions_total" for n, _ in samples) else None
            )

        text, samples = await eventually(counted, timeout=10, what="the abort counted")
    # Every kind of series is in the scrape: each metric type with labelled children.
    names = {name for name, _ in samples}
    assert {
        "rollbot_http_request_duration_seconds_bucket",
        "rollbot_outbound_request_duration_seconds_bucket",
        "rollbot_action_verification_seconds_bucket",
        "rollbot_actions_total",
        "rollbot_outbound_errors_total",
        "rollbot_outbox_pending",
        "rollbot_work_queue_depth",
        "rollbot_build_info",
        "process_resident_memory_bytes",
    } <= names
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _lint_problems(result) == [], result.stdout + result.stderr


def _lint_problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """promtool's findings: one per line on stdout or stderr (none: it printed nothing)."""
    return [line for line in _lines(result.stdout, result.stderr) if line.strip()]


def _lines(*texts: str) -> Iterable[str]:
    for text in texts:
        yield from text.splitlines()
