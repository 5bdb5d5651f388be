"""Benchmark: one alert storm through a real Alertmanager, to Slack by Alertmanager's own
Slack receiver and by rollbot, side by side (issue 17, benchmark 6).

Two real Alertmanager 0.25 processes get the same alert stream, at the same moments:

- the baseline: `slack_configs` with `api_url` set to an incoming webhook of the Slack sim
  (`SlackSim.incoming_webhook`, bound to #alerts), the default title and text templates;
- rollbot: `webhook_configs` to a real `rollbot serve` (its own process, over a SimWorld's
  config and the same Slack sim), posting its cards in #payments-deploys.

Both use the same route (`tests.plugins.prometheus.alertmanager_route`: group by service and
alert name, group_wait 1 s, group_interval 1 s, repeat_interval 1 h), so the receiver is the
only difference. Short on purpose: production's 30 s / 5 m would only stretch both.

The storm, as Prometheus fires it: ALERTS distinct alerts (each its own pod) over
STORM_SECONDS, across the SERVICES (each a fully rolled-out Rollout in the Kubernetes sim and
a service in rollbot's catalog) and ALERT_NAMES, sent as one POST /api/v2/alerts per second
(a 1 s evaluation interval) with `endsAt` 4 minutes ahead, as Prometheus sets it. The
Slack sim enforces Slack's limits for both (a message per second per channel, short bursts;
chat.update 50 a minute); the two channels do not share a bucket.

Figures, rollbot's with Alertmanager's as the baseline:
- time to first message: first alert sent → the first post (or update) Slack accepted;
- time until every alert is shown: the last group's `[FIRING:n]` with all its alerts, or
  every service's card counting all its firing alerts;
- messages per storm: posts and updates Slack accepted (new messages among them), and the
  calls refused with 429, counted from the sim's records from the first alert until every
  alert is shown plus GRACE seconds (the trailing calls).
Asserted: only that every alert reached Slack both ways. Run with `make bench`; under 90 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sim import world as sim_world
from bot.sim._server import RecordedRequest
from bot.sim.harness import CHANNEL, SimWorld
from tests.bench import charts
from tests.bench.results import record
from tests.e2e.serving import leading, start
from tests.plugins.prometheus import alertmanager_route

SERVICES = ("ledger", "fraud-check", "notifications", "search-api", "pricing")
ALERT_NAMES = ("HighErrorRate", "HighLatencyP99", "ErrorBudgetBurn")
STORM_SECONDS = int(os.environ.get("ROLLBOT_BENCH_STORM_SECONDS", "24"))
ALERTS = 12 * STORM_SECONDS  # 288 at the full size: 12 a second
GRACE = 2.0  # s after every alert is shown, for the trailing calls
DEADLINE = 45.0  # s after the storm for every alert to be shown, both ways
NATIVE_CHANNEL_ID, NATIVE_CHANNEL = "C0ALERTS", "alerts"
NAME = "alertmanager_side_by_side"


def _renamed(value: Any, name: str) -> Any:
    """payment-router's objects (Rollout, AnalysisTemplate) under another service's name."""
    return json.loads(json.dumps(value).replace(sim_world.ROLLOUT, name))


def seed_services(world: SimWorld) -> None:
    """Each of SERVICES: its own namespace, its Rollout fully rolled out at revision 7."""
    for name in SERVICES:
        world.kube.create(_renamed(sim_world.payment_router_analysis_template(name), name))
        world.kube.create(
            _renamed(sim_world.payment_router_rollout(name, sim_world.STABLE_IMAGE), name)
        )
        world.argo.adopt_as_stable(name, name, revision=7)
    world.argo.reconcile()


def storm() -> list[list[dict[str, Any]]]:
    """The alerts of each second of the storm, round-robin over services and names."""
    start_at = datetime.now(UTC)
    per_second: list[list[dict[str, Any]]] = [[] for _ in range(STORM_SECONDS)]
    for i in range(ALERTS):
        service = SERVICES[i % len(SERVICES)]
        name = ALERT_NAMES[(i // len(SERVICES)) % len(ALERT_NAMES)]
        second = i * STORM_SECONDS // ALERTS
        fired = start_at + timedelta(seconds=second)
        per_second[second].append(
            {
                "labels": {
                    "alertname": name,
                    "service": service,
                    "namespace": service,
                    "pod": f"{service}-{i:04d}",
                    "severity": "page",
                },
                "annotations": {"summary": f"{name} on pod {service}-{i:04d}"},
                "startsAt": fired.isoformat(),
                "endsAt": (fired + timedelta(minutes=4)).isoformat(),
                "generatorURL": f"http://prometheus.local/graph?g0.expr={name}",
            }
        )
    return per_second


def _groups(batches: list[list[dict[str, Any]]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for batch in batches:
        for a in batch:
            key = (a["labels"]["service"], a["labels"]["alertname"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def _native_all_shown(world: SimWorld, groups: dict[tuple[str, str], int]) -> bool:
    titles = {
        str(a.get("title", ""))
        for m in world.slack.messages(NATIVE_CHANNEL_ID)
        for a in m.get("attachments") or []
    }
    # The default title: `[FIRING:n] <group labels' values> (<other common labels' values>)`.
    return all(
        any(t.startswith(f"[FIRING:{n}] {name} {service} ") for t in titles)
        for (service, name), n in groups.items()
    )


def _native_seen(world: SimWorld) -> str:
    answers = Counter(f"{c.status} {c.response}" for c in world.slack.webhook_calls)
    last: dict[str, str] = {}
    for m in world.slack.messages(NATIVE_CHANNEL_ID):
        for a in m.get("attachments") or []:
            title = str(a.get("title", ""))
            last[title.split("] ", 1)[-1]] = title
    return f"answers {dict(answers)}, last titles {sorted(last.values())}"


def _rollbot_seen(world: SimWorld) -> str:
    seen = {}
    for service in SERVICES:
        card = world.card(service)
        found = re.search(r"Firing alerts\* \(([\d,]+)\)", _card_text(card)) if card else None
        seen[service] = found.group(1) if found else ("no card" if card is None else "no count")
    return str(seen)


def _card_text(card: dict[str, Any]) -> str:
    return json.dumps(card.get("blocks") or [])


def _rollbot_all_shown(world: SimWorld, per_service: dict[str, int]) -> bool:
    for service, n in per_service.items():
        card = world.card(service)
        if card is None or f"*Firing alerts* ({n:,})" not in _card_text(card):
            return False
    return True


def _about_the_storm(call: RecordedRequest, cards: set[str]) -> bool:
    """Whether rollbot's Web API call is about a storm service's card (a new card names
    its service in its header; its thread replies and updates name the card's ts), not
    about the demo canary's."""
    body = call.body if isinstance(call.body, dict) else {}
    if cards & {body.get("ts"), body.get("thread_ts")}:
        return True
    blocks = body.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks:
        if block.get("type") == "header":
            words = str(block.get("text", {}).get("text", "")).split()
            return len(words) > 1 and words[1] in SERVICES
    return False


def _is_message_call(call: RecordedRequest) -> bool:
    return call.path in ("/api/chat.postMessage", "/api/chat.update") or call.path.startswith(
        "/services/"
    )


def _accepted(call: RecordedRequest) -> bool:
    if call.status != 200:
        return False
    return call.response == "ok" or (isinstance(call.response, dict) and call.response.get("ok"))


def tally(calls: list[RecordedRequest], t0: float) -> dict[str, Any]:
    """The message calls of one receiver since t0: accepted, of which new, and refused."""
    ours = [c for c in calls if c.at >= t0 and _is_message_call(c)]
    accepted = [c for c in ours if _accepted(c)]
    return {
        "calls": len(ours),
        "accepted": len(accepted),
        "new": sum(1 for c in accepted if c.path != "/api/chat.update"),
        "refused": sum(1 for c in ours if c.status == 429),
        "first": min((c.at for c in accepted), default=None),
        "times": sorted(c.at - t0 for c in accepted),
    }


async def _until(
    predicate: Callable[[], bool],
    deadline: float,
    what: Callable[[], str],
    interval: float = 0.05,
) -> float:
    """Poll `predicate` until true (the time.time() it was first seen), or fail at `deadline`
    saying `what()`."""
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"within {DEADLINE:.0f} s of the storm's end: {what()}")
        await asyncio.sleep(interval)
    return time.time()


@pytest.mark.timeout(300)
async def test_alertmanager_slack_receiver_vs_rollbot(tmp_path: Path, alertmanager_peer) -> None:
    extra = {name: {"namespace": name, "rollout": name, "channel": CHANNEL} for name in SERVICES}
    async with SimWorld(speed=1, start_bot=False, workdir=tmp_path, extra_services=extra) as world:
        seed_services(world)
        world.slack.add_channel(NATIVE_CHANNEL_ID, NATIVE_CHANNEL)
        hook = world.slack.incoming_webhook(NATIVE_CHANNEL_ID)
        served = await start(world, tmp_path / "rollbot.log")
        try:
            world.attach_bot(served.url)
            ready_by = time.monotonic() + 60
            while not await leading(served.url):  # only the leader processes alerts
                assert time.monotonic() < ready_by, "rollbot serve never led"
                await asyncio.sleep(0.1)
            native = alertmanager_peer(
                config={
                    "global": {"resolve_timeout": "10s"},
                    "route": alertmanager_route("slack"),
                    "receivers": [
                        {
                            "name": "slack",
                            "slack_configs": [
                                {"api_url": hook, "channel": "#alerts", "send_resolved": True}
                            ],
                        }
                    ],
                }
            )
            via_rollbot = alertmanager_peer(
                webhook_url=f"{served.url}/webhooks/alertmanager",
                token=world.secrets.alertmanager_token,
            )
            batches = storm()
            groups = _groups(batches)
            per_service = {
                s: sum(n for (svc, _), n in groups.items() if svc == s) for s in SERVICES
            }

            t0 = time.time()
            m0 = time.monotonic()
            async with httpx.AsyncClient(timeout=10) as client:
                for k, batch in enumerate(batches):
                    await asyncio.sleep(max(0.0, m0 + k - time.monotonic()))
                    answers = await asyncio.gather(
                        *(
                            client.post(f"{am.url}/api/v2/alerts", json=batch)
                            for am in (native, via_rollbot)
                        )
                    )
                    assert all(a.status_code == 200 for a in answers), answers
            deadline = time.monotonic() + DEADLINE
            native_done, rollbot_done = await asyncio.gather(
                _until(
                    lambda: _native_all_shown(world, groups),
                    deadline,
                    lambda: f"Alertmanager's Slack messages: {_native_seen(world)}",
                ),
                _until(
                    lambda: _rollbot_all_shown(world, per_service),
                    deadline,
                    lambda: f"rollbot's cards: {_rollbot_seen(world)}",
                ),
            )
            await asyncio.sleep(GRACE)  # the trailing calls, counted below
            calls = world.slack.calls
            cards = {c["ts"] for s in SERVICES if (c := world.card(s))}
        finally:
            served.stop()

    theirs = tally([c for c in calls if c.path.startswith("/services/")], t0)
    ours = tally([c for c in calls if _about_the_storm(c, cards)], t0)
    assert theirs["first"] is not None and ours["first"] is not None
    first = {"rollbot": ours["first"] - t0, "alertmanager": theirs["first"] - t0}
    shown = {"rollbot": rollbot_done - t0, "alertmanager": native_done - t0}

    print(
        f"\nAlertmanager's Slack receiver vs rollbot · {ALERTS} alerts over {STORM_SECONDS} s, "
        f"{len(SERVICES)} services × {len(ALERT_NAMES)} alert names ({len(groups)} groups) · "
        "group_wait 1 s, group_interval 1 s for both · Slack's limits on"
    )
    print(
        f"{'receiver':<26}{'first msg s':>12}{'all shown s':>12}{'messages':>10}"
        f"{'new':>6}{'429s':>7}{'calls':>7}"
    )
    for label, key, t in (
        ("Alertmanager slack_configs", "alertmanager", theirs),
        ("rollbot", "rollbot", ours),
    ):
        print(
            f"{label:<26}{first[key]:12.2f}{shown[key]:12.2f}{t['accepted']:10d}"
            f"{t['new']:6d}{t['refused']:7d}{t['calls']:7d}"
        )

    record(
        f"{NAME}.first_message_s",
        round(first["rollbot"], 2),
        "s",
        baseline=round(first["alertmanager"], 2),
    )
    record(
        f"{NAME}.all_alerts_shown_s",
        round(shown["rollbot"], 2),
        "s",
        baseline=round(shown["alertmanager"], 2),
    )
    record(f"{NAME}.messages_per_storm", ours["accepted"], "messages", baseline=theirs["accepted"])
    record(f"{NAME}.new_messages_per_storm", ours["new"], "messages", baseline=theirs["new"])
    record(f"{NAME}.refused_429", ours["refused"], "calls", baseline=theirs["refused"])
    charts.bars(
        f"{NAME}_messages",
        f"Slack calls in one storm of {ALERTS} alerts",
        {
            "rollbot: posts + updates": ours["accepted"],
            "rollbot: refused (429)": ours["refused"],
            "baseline Alertmanager slack_configs: posts": theirs["accepted"],
            "baseline Alertmanager: refused (429)": theirs["refused"],
        },
        "calls",
    )
    charts.timeline(
        f"{NAME}_timeline",
        "Slack messages accepted since the first alert (cumulative)",
        {
            "rollbot": (ours["times"], list(range(1, len(ours["times"]) + 1))),
            "baseline Alertmanager slack_configs": (
                theirs["times"],
                list(range(1, len(theirs["times"]) + 1)),
            ),
        },
        xlabel="s since the first alert",
        ylabel="messages",
    )
