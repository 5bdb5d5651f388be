"""Benchmark: SLO breach → incident card, through the real Prometheus and Alertmanager.

The canary of payment-router is degraded in a metrics app that Prometheus 2.42 scrapes every
second; the deploy/prometheus rules (expressions as deployed, `for:` shortened to 3 s) fire;
Alertmanager 0.25 (group_wait 1 s) delivers to rollbot in the simulated world; the card is
posted to the Slack sim. Each round prints the stages:

    degrade → alert firing in Prometheus → webhook stored by rollbot → card posted

and rollbot's own share (webhook stored → card posted) against the whole. The rest is the
monitoring pipeline's configuration (scrape and evaluation interval, `for:`, group_wait),
which in production is dominated by `for: 5m`. Run with `make bench`.

Records the medians: `breach_to_card.total_s` with the monitoring pipeline alone (degrade →
webhook stored: Prometheus and Alertmanager) as its baseline, so the ratio is what rollbot
adds; `breach_to_card.rollbot_ms` (rollbot's own share), `.prometheus_s` and
`.alertmanager_s`. Draws the stages (docs/bench/breach_to_card.png).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sim.harness import ALERTMANAGER_TOKEN, SimWorld
from tests.bench import charts
from tests.bench.results import record
from tests.helpers import bound_socket
from tests.plugins.prometheus import shorten_rules

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rollbot-canary.rules.yaml"
ROUNDS = 3


@pytest.mark.timeout(600)
async def test_breach_to_card(tmp_path, metrics_app, prometheus_peer, alertmanager_peer):
    # Only the canary gates: the burn-rate windows cannot clear between rounds.
    rules = tmp_path / RULES.name
    rules.write_text(shorten_rules(RULES.read_text(), windows={"1m": "10s"}))
    rows = []
    for round_ in range(ROUNDS):
        # Alertmanager must know rollbot's URL before the world starts: a socket bound now
        # and handed to the world (probing a free port and binding it later lost a race).
        sock = bound_socket()
        port = sock.getsockname()[1]
        am = alertmanager_peer(
            webhook_url=f"http://127.0.0.1:{port}/webhooks/alertmanager", token=ALERTMANAGER_TOKEN
        )
        prom = prometheus_peer(scrape=metrics_app, rule_files=[rules], alertmanager=am)
        workdir = tmp_path / f"round-{round_}"
        workdir.mkdir()
        settings = {"prometheus": {"url": prom.url}}
        async with SimWorld(
            speed=2, sock=sock, workdir=workdir, analysis_at_25="Successful", settings=settings
        ) as world:
            prom.wait_for(
                lambda p=prom: len(p.query("http_requests_total")) >= 4,
                timeout=30,
                what="both versions scraped",
            )
            await asyncio.sleep(0)
            metrics_app.heal()
            t0 = time.time()
            metrics_app.degrade_canary(error_rate=0.3, latency_ms=450)

            fired_at = None
            while world.card() is None:
                if fired_at is None and any(a.get("state") == "firing" for a in prom.alerts()):
                    fired_at = time.time()
                if time.time() - t0 > 120:
                    raise TimeoutError("no card within 120 s")
                await asyncio.sleep(0.02)
            posts = [
                c for c in world.slack.calls_to("chat.postMessage") if not c.body.get("thread_ts")
            ]
            card_at = posts[0].at
            first = await world.rollbot.store.get_webhook(1)
            assert first is not None
            stored_at = first.received_at.timestamp()
            rows.append(
                {
                    "total": card_at - t0,
                    "prometheus": (fired_at or stored_at) - t0,
                    "alertmanager": stored_at - (fired_at or stored_at),
                    "rollbot": card_at - stored_at,
                }
            )
            metrics_app.heal()

    print(f"\nbreach → card · {ROUNDS} rounds · scrape/eval 1 s, for: 3 s, group_wait 1 s")
    print(
        f"{'round':<7}{'total s':>9}{'prometheus s':>14}{'alertmanager s':>16}"
        f"{'rollbot ms':>12}{'rollbot share':>15}"
    )
    for i, r in enumerate(rows, 1):
        print(
            f"{i:<7}{r['total']:9.2f}{r['prometheus']:14.2f}{r['alertmanager']:16.2f}"
            f"{r['rollbot'] * 1000:12.0f}{r['rollbot'] / r['total']:15.1%}"
        )
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"{'median':<7}{median['total']:9.2f}{median['prometheus']:14.2f}"
        f"{median['alertmanager']:16.2f}{median['rollbot'] * 1000:12.0f}"
        f"{median['rollbot'] / median['total']:15.1%}"
    )
    print(f"measured at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    assert all(r["rollbot"] >= 0 for r in rows)

    pipeline = median["prometheus"] + median["alertmanager"]
    record("breach_to_card.total_s", round(median["total"], 2), "s", baseline=round(pipeline, 2))
    record("breach_to_card.rollbot_ms", round(median["rollbot"] * 1000), "ms")
    record("breach_to_card.prometheus_s", round(median["prometheus"], 2), "s")
    record("breach_to_card.alertmanager_s", round(median["alertmanager"], 2), "s")
    charts.bars(
        "breach_to_card",
        f"Breach → card, median of {ROUNDS} rounds",
        {
            "Prometheus: scrape, rules, for: 3 s": round(median["prometheus"], 2),
            "Alertmanager: group_wait 1 s": round(median["alertmanager"], 2),
            "rollbot: webhook stored → card": round(median["rollbot"], 3),
            "total": round(median["total"], 2),
        },
        "s",
    )
