"""Fault 4: Jira and PagerDuty answer 5xx for five minutes (of simulated time) while an
incident pages and a release starts. Afterwards everything is delivered, once; a message
that keeps failing for its own reasons is parked, said once and counted, never retried for
ever and never dropped in silence.

rollbot runs in process (SimWorld) against the PagerDuty, Jira, Slack, Kubernetes and Argo
sims. rollbot's clock is a `ScaledClock` running `SPEED` times faster than wall time: the
five minutes last `300 / SPEED` seconds, and rollbot's own waits (the outbox's backoff, the
filing job's retries) run on that clock, so the delays measured are those a real
five-minute outage would cause (give or take the PagerDuty client's own short retries,
which sleep in wall time). The Argo sim runs faster still (`ARGO_SPEED`), so the canary
reaches its paused analysis within the window.

While both are down (every request answered 503):
- payment-router's canary pauses on an inconclusive analysis: its card's incident pages
  (a PagerDuty trigger, queued); the on-call aborts it from Slack, verified (a note and an
  acknowledge, queued);
- `/release start payment-router 1.13.0` plans three cleanup tickets (not filed yet);
- an SLO alert opens checkout's incident, whose page goes to a routing key PagerDuty does
  not know (its integration deleted): refused for that reason alone once PagerDuty is back.

Aspects under test, against the sims' own logs:
- every PagerDuty event for payment-router's incident reached PagerDuty exactly once, in
  order (trigger, acknowledge, then the resolve when the card's incident resolves); one
  incident, acknowledged then resolved; the abort's note on it once;
- three Jira tickets, each created once, and the release thread says they were filed late;
- each thread says once that PagerDuty (or Jira) is unreachable;
- checkout's page is refused (400 "Invalid routing key") exactly once and parked: kept in
  the outbox with PagerDuty's reason, counted in ``rollbot_outbox_parked_total``, said
  once in checkout's thread; nothing is left to retry.

Figures (printed as ``FIGURE name=value``): ``pd_delivery_delay_after_window_s`` and
``jira_delivery_delay_after_window_s`` (simulated seconds from the end of the window to
the last of the queued calls delivered), ``pd_events_delivered``, ``pd_notes_delivered``,
``jira_tickets_created``, ``duplicates``, ``down_notices`` (one per thread), ``parked``,
``wall_s``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.runtime.scheduler import ScaledClock
from bot.sim import alerts as sim_alerts
from bot.sim import world as sim_world
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, ONCALL, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

SPEED = 12.0  # rollbot's clock: five simulated minutes last 25 seconds
ARGO_SPEED = 600.0  # the Rollout reaches its paused analysis within a couple of seconds
WINDOW = timedelta(minutes=5)
KEY = "rollbot/payment-router/payments/payment-router@42"
RID = "payment-router@1.13.0"
CHECKOUT = sim_world.CHECKOUT
WRONG_KEY = "R0UTINGKEYDELETEDINPAGERDUTY000"  # checkout's integration no longer exists


def _thread(world: SimWorld, ts: str | None) -> list[str]:
    if ts is None:
        return []
    return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, ts)]


def _card_thread(world: SimWorld, service: str) -> list[str]:
    card = world.card(service)
    return _thread(world, card["ts"] if card else None)


async def _release_thread(world: SimWorld) -> list[str]:
    release = await world.rollbot.store.get_release(RID)
    return _thread(world, release.thread_ts if release else None)


def _events(world: SimWorld, key: str) -> list[str]:
    """The actions of the Events API bodies PagerDuty took for `key`, in order."""
    return [e.get("event_action") for e in world.pd.events() if e.get("dedup_key") == key]


async def _parked_metric(world: SimWorld) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{world.url}/metrics")).text
    for line in text.splitlines():
        if line.startswith('rollbot_outbox_parked_total{kind="pagerduty.event"}'):
            return float(line.split()[-1])
    return 0.0


async def test_jira_and_pagerduty_down_five_minutes_everything_delivered_once() -> None:
    """FIGURES pd_delivery_delay_after_window_s, jira_delivery_delay_after_window_s,
    pd_events_delivered, pd_notes_delivered, jira_tickets_created, duplicates,
    down_notices, parked, wall_s."""
    began = time.monotonic()
    clock = ScaledClock(datetime.now(UTC), speed=SPEED)
    async with SimWorld(
        speed=ARGO_SPEED,
        clock=clock,
        pagerduty=True,
        jira=True,
        checkout=True,
        env={"ROLLBOT_SERVICES__CHECKOUT__PAGERDUTY__ROUTING_KEY": WRONG_KEY},
        settings={"slack": {"fallback_channel": "#rollbot-alerts"}},
    ) as world:
        # ── the window: both answer 503 to everything ──
        world.pd.set_down(True, status=503)
        world.jira.set_down(True, down_mode="503")
        down_from = clock.now()

        card = await world.wait_for_card()
        await world.wait_for(
            lambda: world.button(world.card() or {}, "rollout_abort"),
            timeout=30,
            what="the card's abort button",
        )
        response = await world.sender.slash_command(
            ONCALL[0],
            ONCALL[1],
            "start payment-router 1.13.0",
            command="/release",
            channel_id=CHANNEL_ID,
        ).send()
        assert response.status_code == 200, response.text
        # The release first: a start that reads the Rollout after the abort is refused
        # (the revision was aborted), as it should be.
        await eventually(
            lambda: world.rollbot.store.get_release(RID), timeout=30, what="the release started"
        )
        response = await world.click(world.card() or card, "rollout_abort")
        assert response.status_code == 200
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("abort")
            ),
            timeout=30,
            what="the abort applied",
        )
        alert = sim_alerts.webhook(
            [
                sim_alerts.alert(
                    "RollbotErrorRateHigh",
                    service=CHECKOUT,
                    labels={"slo": "error_rate"},
                    summary="checkout: 5xx ratio 9 % (SLO < 1 %)",
                )
            ]
        )
        sent = await sim_alerts.send(
            f"{world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, alert
        )
        assert sent.status_code == 200, sent.text
        # Everything is queued and has met the outage: each thread says so.
        await world.wait_for(
            lambda: any("PagerDuty is unreachable" in t for t in _card_thread(world, CHECKOUT)),
            timeout=30,
            what="checkout's thread saying PagerDuty is unreachable",
        )
        await eventually(
            lambda: _has(_release_thread(world), "Jira is unreachable"),
            timeout=30,
            what="the release thread saying Jira is unreachable",
        )
        assert any("PagerDuty is unreachable" in t for t in _card_thread(world, "payment-router"))
        assert world.pd.incidents() == [] and world.jira.created_count == 0
        assert clock.now() < down_from + WINDOW, "the scenario outlasted the window"

        # ── five minutes later both answer again ──
        await world.wait_for(
            lambda: clock.now() >= down_from + WINDOW, timeout=30, what="five minutes"
        )
        world.pd.set_down(False)
        world.jira.set_down(False)
        up_at = time.time()

        await eventually(
            lambda: _has(_release_thread(world), "filed *late*"),
            timeout=40,
            what="the tickets filed, late",
        )
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(KEY), timeout=30, what="the incident"
        )
        await world.wait_for(
            lambda: any("abort by" in n["content"] for n in world.pd.notes(incident["id"])),
            timeout=30,
            what="the abort's note",
        )
        await world.wait_for(
            lambda: _events(world, KEY)[:2] == ["trigger", "acknowledge"],
            timeout=30,
            what="the trigger, then the acknowledge",
        )
        delivered_by = max(
            r.at
            for r in world.pd.requests
            if r.status < 300
            and (
                (r.path == "/v2/enqueue" and (r.body or {}).get("dedup_key") == KEY)
                or (r.method == "POST" and r.path.endswith("/notes"))
            )
        )
        jira_by = max(
            r.at
            for r in world.jira.requests
            if r.method == "POST" and r.path.endswith("/issue") and r.status == 201
        )
        # The card's incident resolves (the aborted canary is quiet for the quiet period):
        # one resolve. Then the outbox holds nothing due, ever: no retry is left.
        await world.wait_for(
            lambda: world.pd.incident(incident["id"])["status"] == "resolved",
            timeout=40,
            what="the PagerDuty incident resolved",
        )

        # ── the parked page ──
        parked = await eventually(
            world.rollbot.store.parked_outbox, timeout=30, what="checkout's page parked"
        )
        await world.wait_for(
            lambda: any("PagerDuty refused the page" in t for t in _card_thread(world, CHECKOUT)),
            timeout=30,
            what="checkout's thread saying the page was refused",
        )

        async def drained() -> bool:
            far = datetime.now(UTC) + timedelta(days=1)
            return not await world.rollbot.store.due_outbox(far)

        await eventually(drained, timeout=30, what="nothing left to send or retry")
        refused = [
            r
            for r in world.pd.requests
            if r.path == "/v2/enqueue" and (r.body or {}).get("routing_key") == WRONG_KEY
        ]
        metric = await _parked_metric(world)

        # ── everything once, against the sims' own logs ──
        actions = _events(world, KEY)
        assert actions == ["trigger", "acknowledge", "resolve"], actions
        assert [i["incident_key"] for i in world.pd.incidents()] == [KEY]
        notes = [n for n in world.pd.notes(incident["id"]) if "abort by" in n["content"]]
        assert len(notes) == 1, notes
        issues = world.jira.issues
        assert world.jira.created_count == 3
        labels = Counter(
            label
            for issue in issues.values()
            for label in issue["fields"]["labels"]
            if label.startswith("rollbot-payment-router-1.13.0-")
        )
        assert len(labels) == 3 and set(labels.values()) == {1}, labels
        release_thread = await _release_thread(world)
        down_notices = {
            "payment-router": sum(
                "PagerDuty is unreachable" in t for t in _card_thread(world, "payment-router")
            ),
            "checkout": sum("PagerDuty is unreachable" in t for t in _card_thread(world, CHECKOUT)),
            "release": sum("Jira is unreachable" in t for t in release_thread),
        }
        assert down_notices == {"payment-router": 1, "checkout": 1, "release": 1}, down_notices
        assert sum("filed *late*" in t for t in release_thread) == 1

        assert len(parked) == 1, parked
        assert parked[0].payload["dedup_key"].startswith(f"rollbot/{CHECKOUT}/")
        assert "Invalid routing key" in (parked[0].last_error or "")
        assert [r.status for r in refused if r.status != 503] == [400], "refused once, kept"
        said = [t for t in _card_thread(world, CHECKOUT) if "PagerDuty refused the page" in t]
        assert len(said) == 1 and "Invalid routing key" in said[0], said
        assert metric == 1.0

        duplicates = (
            sum(n - 1 for n in Counter(actions).values())
            + len(world.pd.incidents())
            - 1
            + len(notes)
            - 1
            + world.jira.created_count
            - len(labels)
        )
        assert duplicates == 0
    pd_delay = (delivered_by - up_at) * SPEED
    jira_delay = (jira_by - up_at) * SPEED
    print(f"FIGURE pd_delivery_delay_after_window_s={pd_delay:.0f}")
    print(f"FIGURE jira_delivery_delay_after_window_s={jira_delay:.0f}")
    print(f"FIGURE pd_events_delivered={len(actions)}")
    print(f"FIGURE pd_notes_delivered={len(notes)}")
    print(f"FIGURE jira_tickets_created={world.jira.created_count}")
    print(f"FIGURE duplicates={duplicates}")
    print(f"FIGURE down_notices={sum(down_notices.values())}")
    print(f"FIGURE parked={len(parked)}")
    print(f"FIGURE wall_s={time.monotonic() - began:.1f}")


async def _has(lines: Any, fragment: str) -> bool:
    return any(fragment in t for t in await lines)
