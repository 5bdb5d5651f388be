"""Issue 15: incidents are durable. A real `rollbot serve` is killed with SIGKILL in the
middle of an incident and started again on the same database.

Aspects under test:
- an incident opened by an SLO alert (checkout, fully rolled out, paging PagerDuty) is
  known to the restarted process: Alertmanager's resolve resolves it, the card (the same
  message, updated in place) ends "Incident resolved", and PagerDuty gets exactly one
  resolve for the card's dedup key, the one it was triggered with;
- a verified abort's headline ("Aborted, verified", who, when) survives the restart: the
  next render of the card (an SLO alert for the aborted revision) still leads with it.

Before issue 15 the restarted process forgot both: the resolve found nothing to resolve
(the card said "Incident open" until Alertmanager repeated the alert, hours later), and
the card lost its headline at its next render.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, ONCALL, SimWorld
from tests.e2e.serving import Served, leading, start
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(180)

# A short leader lease: the restarted process takes over soon after the killed one's lapses.
SETTINGS = {"server": {"leader_lease_seconds": 1.5}}

CHECKOUT = sim_world.CHECKOUT
SUMMARY = "checkout: 5xx ratio 9 % on the new tax engine (SLO < 1 %)"


def _alert(service: str, status: str) -> dict[str, Any]:
    return sim_alerts.webhook(
        [
            sim_alerts.alert(
                "RollbotErrorRateHigh",
                service=service,
                status=status,
                labels={"slo": "error_rate"},
                summary=SUMMARY,
            )
        ]
    )


async def _send(world: SimWorld, payload: dict[str, Any]) -> None:
    response = await sim_alerts.send(
        f"{world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, payload
    )
    assert response.status_code == 200, response.text


def _header(card: dict[str, Any] | None) -> str:
    if card is None:
        return ""
    return next(
        (b["text"]["text"] for b in card.get("blocks") or [] if b.get("type") == "header"), ""
    )


def _kill(served: Served) -> None:
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(timeout=10)


async def _restart(world: SimWorld, log: Path) -> Served:
    """`rollbot serve` again on the same database, once it leads (`/readyz` says so: the killed
    process's lease has lapsed)."""
    served = await start(world, log)
    world.attach_bot(served.url)
    await eventually(
        lambda: leading(served.url),
        timeout=30,
        interval=0.1,
        what="the restarted process leading",
    )
    return served


async def test_an_alert_incident_resolves_after_kill_9(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    async with SimWorld(
        speed=60,
        start_bot=False,
        pagerduty=True,
        checkout=True,
        workdir=tmp_path,
        settings=SETTINGS,
    ) as world:
        first = await start(world, log)
        try:
            world.attach_bot(first.url)
            await _send(world, _alert(CHECKOUT, "firing"))
            card = await world.wait_for(
                lambda: (c := world.card(CHECKOUT)) and "Incident open" in _header(c) and c,
                timeout=40,
                what="checkout's card, incident open",
            )
            incident = await world.wait_for(
                lambda: next(iter(world.pd.incidents()), None),
                timeout=40,
                what="the PagerDuty incident triggered",
            )
        finally:
            _kill(first)
        key = incident["incident_key"]

        second = await _restart(world, log)
        try:
            # The resolve reaches a process that never saw the alert fire.
            await _send(world, _alert(CHECKOUT, "resolved"))
            resolved = await world.wait_for(
                lambda: (c := world.card(CHECKOUT)) and "Incident resolved" in _header(c) and c,
                timeout=60,
                what="the card resolved by the restarted process",
            )
            assert resolved["ts"] == card["ts"]  # the same message, updated in place
            await world.wait_for(
                lambda: world.pd.incident(incident["id"])["status"] == "resolved",
                timeout=40,
                what="the PagerDuty incident resolved",
            )
            resolves = [
                e
                for e in world.pd.events()
                if e.get("event_action") == "resolve" and e.get("dedup_key") == key
            ]
            assert len(resolves) == 1, resolves
            assert len(world.pd.incidents()) == 1  # nothing triggered anew
        finally:
            second.stop()
        assert re.search(r"restored [1-9]\d* incident\(s\) from the database", log.read_text())


async def test_the_abort_headline_survives_kill_9(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    async with SimWorld(speed=600, start_bot=False, workdir=tmp_path, settings=SETTINGS) as world:
        first = await start(world, log)
        try:
            world.attach_bot(first.url)
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
                timeout=60,
                what="the card with Abort (Tier 1)",
            )
            await world.click(card, "rollout_abort")
            await world.wait_for(
                lambda: "Aborted, verified" in _header(world.card()),
                timeout=40,
                what="the verified abort on the card",
            )
        finally:
            _kill(first)

        second = await _restart(world, log)
        try:
            before = len(world.slack.calls_to("chat.update"))
            # An SLO alert for the aborted revision: the card is rendered again.
            await _send(world, _alert("payment-router", "firing"))
            updated = await world.wait_for(
                lambda: (
                    len(world.slack.calls_to("chat.update")) > before
                    and "RollbotErrorRateHigh" in json.dumps(world.card())
                    and world.card()
                ),
                timeout=40,
                what="the card rendered by the restarted process, with the alert",
            )
            assert _header(updated).startswith("🛡️ payment-router · Aborted, verified")
            assert f"Aborted by <@{ONCALL[0]}>" in json.dumps(updated["blocks"])
        finally:
            second.stop()
