"""SLO breach → card → resolve, through the real Prometheus 2.42 and Alertmanager 0.25.

A small instrumented service (bot/sim/metrics_app.py) exports version-labelled metrics;
Prometheus scrapes it every second and evaluates the rules of deploy/prometheus/ (their
expressions as deployed; `for:` and range windows shortened so they fire and clear within
seconds); Alertmanager delivers to rollbot's /webhooks/alertmanager with a Bearer token;
rollbot runs in the simulated world (Kubernetes and Slack sims) with a canary at 10 %.

Aspects under test:
- degrading the canary fires the deploy rules for version=canary; Alertmanager delivers;
  one incident card appears with the three tiers (Tier 1 recommended) and the
  canary-vs-stable evidence queried from the same Prometheus;
- healing the canary resolves the alerts; the card goes recovering, then resolved;
- one card throughout; every webhook body stored and processed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, SimWorld
from tests.helpers import bound_socket
from tests.plugins.prometheus import shorten_rules

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_RULES = ROOT / "deploy" / "prometheus" / "rollbot-canary.rules.yaml"
WINDOWS = {w: "10s" for w in ("1m", "5m", "30m", "1h", "2h", "6h", "1d", "3d")}


def card_text(world: SimWorld) -> str:
    return json.dumps((world.card() or {}).get("blocks"), ensure_ascii=False)


@pytest.mark.timeout(180)
async def test_breach_to_card_to_resolved_through_real_prometheus_and_alertmanager(
    tmp_path, metrics_app, prometheus_peer, alertmanager_peer
):
    rules = tmp_path / DEPLOY_RULES.name
    rules.write_text(shorten_rules(DEPLOY_RULES.read_text(), windows=WINDOWS))
    # Alertmanager must know rollbot's URL before the world starts: a socket bound now and
    # handed to the world, so no other process can take the port in between.
    sock = bound_socket()
    port = sock.getsockname()[1]
    am = alertmanager_peer(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/alertmanager", token=ALERTMANAGER_TOKEN
    )
    prom = prometheus_peer(scrape=metrics_app, rule_files=[rules], alertmanager=am)
    settings = {
        "prometheus": {"url": prom.url, "query_timeout_seconds": 2},
        "incidents": {"quiet_period_seconds": 2},
        "services": {
            "payment-router": {
                "slo": {"error_rate": 0.02, "latency_p95_ms": 300, "latency_p99_ms": 200},
                "metrics": {"job": "payment-router"},
            }
        },
    }
    async with SimWorld(
        speed=5, sock=sock, workdir=tmp_path, analysis_at_25="Successful", settings=settings
    ) as world:
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("currentStepIndex", 0)
                >= 1
            ),
            timeout=30,
            what="the canary at 10 %",
        )
        # both versions scraped before the breach, so the evidence has a baseline
        prom.wait_for(
            lambda: len(prom.query("http_requests_total")) >= 4,
            timeout=30,
            what="both versions scraped",
        )
        metrics_app.degrade_canary(error_rate=0.3, latency_ms=450)

        card = await world.wait_for(
            lambda: "Incident open" in card_text(world) and world.card(),
            timeout=60,
            what="the incident card from the real alert pipeline",
        )
        text = card_text(world)
        assert "Recommended: Tier 1" in text
        assert "Tier 2" in text and "Tier 3" in text
        # Alertmanager groups by alert name: the gate alerts join the same card as they come
        # Alertmanager groups by alert name: the gate alerts join the same incident as they
        # come (the card lists the first five and "+N more").
        incidents = world.rollbot.incidents.incidents
        await world.wait_for(
            lambda: (
                {"RollbotErrorRateHigh", "RollbotLatencyP95High", "RollbotLatencyP99High"}
                <= {
                    text.split(":")[0]
                    for _, text in incidents["payments/payment-router@42"].summaries
                }
            ),
            timeout=30,
            what="the three canary gate alerts in the incident",
        )
        assert "Firing alerts" in card_text(world)
        # Evidence is refreshed while the incident is open; the 1m rates show the breach
        # once the bad samples dominate the window.
        await world.wait_for(
            lambda: "Canary vs stable" in card_text(world) and "⚠️" in card_text(world),
            timeout=60,
            what="the evidence from Prometheus showing the breach",
        )
        firing = {a["labels"]["alertname"] for a in am.alerts()}
        assert {"RollbotErrorRateHigh", "RollbotLatencyP95High"} <= firing
        assert all(a["labels"].get("version") in (None, "canary") for a in am.alerts())

        metrics_app.heal()
        await world.wait_for(
            lambda: "Incident resolved" in card_text(world),
            timeout=90,
            what="the incident resolved after healing",
        )
        thread = [m["text"] for m in world.slack.thread(CHANNEL_ID, card["ts"])]
        assert any("ecovering" in line for line in thread), thread
        tops = [
            m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m["ts"])
        ]
        assert len(tops) == 1
        assert await world.rollbot.store.pending_webhooks(limit=100) == []
