"""SLO alerts → the incident card with tiers, in the simulated world over real HTTP.

Aspects under test:
- an Alertmanager webhook (Bearer token) for a canary in progress opens one incident card
  with the three tiers, Tier 1 recommended, Tier 2 shown unavailable with its reason, Tier 3
  with the revert steps and the release SHA; the recommended abort then runs and verifies;
- correlation: the watch's own card (inconclusive pause) and an SLO alert for the same
  revision are one incident and one card;
- an alert storm (1,000 distinct alerts in 10 concurrent webhooks, plus repeats) gives one
  card, a handful of updates and one thread line, and every alert is recorded;
- resolved alerts mark the incident recovering, then resolved after the quiet period;
- alerts for no known service: 200, counted, one notice to the fallback channel per alert
  name per interval; once too when Slack stored the notice and its answer was lost (every
  post rollbot makes carries a key, and is looked for before it is sent again);
- wrong token → 401, malformed body → 400 saying what is wrong, nothing processed, and
  nobody paged: nothing queued for or sent to PagerDuty, no message to or about the on-call.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.sim import alerts as sim_alerts
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, ONCALL, USERGROUP, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

SETTINGS = {
    "incidents": {"quiet_period_seconds": 1},
    "slack": {"fallback_channel": "#rollbot-alerts"},
}


def tops(world: SimWorld) -> list[dict]:
    return [m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m["ts"])]


def card_text(world: SimWorld) -> str:
    return json.dumps((world.card() or {}).get("blocks"), ensure_ascii=False)


async def send(world: SimWorld, alerts: list[dict], token: str | None = ALERTMANAGER_TOKEN):
    return await sim_alerts.send(
        f"{world.url}/webhooks/alertmanager", token, sim_alerts.webhook(alerts)
    )


def error_rate(status: str = "firing", **labels: str) -> dict:
    return sim_alerts.alert(
        "RollbotErrorRateHigh",
        service="payment-router",
        status=status,
        labels={"version": "canary", "slo": "error_rate", **labels},
        summary="canary 5xx ratio 31 % ≥ 2 % for 5m",
    )


async def canary_started(world: SimWorld) -> None:
    await world.wait_for(
        lambda: (
            (world.kube.get("rollouts", "payments", "payment-router") or {})
            .get("status", {})
            .get("currentStepIndex", 0)
            >= 1
        ),
        timeout=20,
        what="the canary at 10 %",
    )


@pytest.fixture
async def progressing(tmp_path):
    """A canary that progresses by itself (analyses pass), slowly enough to act on."""
    async with SimWorld(
        speed=20, workdir=tmp_path, analysis_at_25="Successful", settings=SETTINGS
    ) as w:
        w.slack.add_channel("C0FALLBACK", "rollbot-alerts")
        yield w


async def test_alert_opens_incident_card_with_three_tiers_and_recommended_abort(progressing):
    world = progressing
    await canary_started(world)
    assert world.card() is None  # nothing hurts yet
    response = await send(world, [error_rate()])
    assert response.status_code == 200 and response.json()["status"] == "accepted"

    card = await world.wait_for(world.card, timeout=10, what="the incident card")
    text = json.dumps(card["blocks"])
    assert "Incident open" in text
    assert "Tier 1" in text and "Tier 2" in text and "Tier 3" in text
    assert "Recommended: Tier 1" in text
    assert "payments.new-router.circuit-open" in text  # Tier 2 named, not yet available
    # Tier 3's steps, with the release SHA from the pod template, are one click away (the
    # card says where): the revert modal shows them.
    assert "steps: *Runbook (Tier 3)*" in text or "steps: *Record Tier 3 revert" in text
    await world.click(card, "revert_open")
    modal = await world.wait_for(
        lambda: world.slack.open_views(ONCALL[0]), timeout=10, what="the revert modal"
    )
    assert "3f9c2d1e8b7a" in json.dumps(modal[-1]["blocks"])
    assert "RollbotErrorRateHigh" in text
    assert world.button(card, "rollout_abort") is not None

    await world.click(card, "rollout_abort")
    await world.wait_for(
        lambda: "Aborted by <@U0ONCALL>" in card_text(world), timeout=20, what="the verified abort"
    )
    (entry,) = [e for e in await world.rollbot.store.audit_entries() if e.entry.action == "abort"]
    assert entry.entry.result == "succeeded"
    assert len(tops(world)) == 1


async def test_watch_card_and_alert_for_same_revision_are_one_incident(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, settings=SETTINGS) as world:
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=40,
            what="the watch's card",
        )
        await send(world, [error_rate()])
        await world.wait_for(
            lambda: "RollbotErrorRateHigh" in card_text(world),
            timeout=10,
            what="the alert on the same card",
        )
        assert world.card()["ts"] == card["ts"]
        assert len(tops(world)) == 1
        incidents = world.rollbot.incidents.incidents
        assert list(incidents) == ["payments/payment-router@42"]
        assert incidents["payments/payment-router@42"].firing == {
            "rollout",
            next(iter(incidents["payments/payment-router@42"].firing - {"rollout"})),
        }


async def test_alert_storm_is_one_card_few_updates_every_alert_recorded(progressing):
    world = progressing
    await canary_started(world)
    batches = [
        [error_rate(pod=f"payment-router-canary-{b}-{i}") for i in range(100)] for b in range(10)
    ]
    rollout_reads = len(world.kube.requests_matching("GET", "/rollouts/payment-router"))
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{world.url}/webhooks/alertmanager"
        responses = await asyncio.gather(
            *(
                sim_alerts.send(url, ALERTMANAGER_TOKEN, sim_alerts.webhook(batch), client=client)
                for batch in batches
            )
        )
        # Alertmanager re-sends the same groups on its group_interval: repeats change nothing.
        responses += await asyncio.gather(
            *(
                sim_alerts.send(url, ALERTMANAGER_TOKEN, sim_alerts.webhook(batch), client=client)
                for batch in batches[:3]
            )
        )
    assert all(r.status_code == 200 for r in responses)
    incident = await world.wait_for(
        lambda: (
            (i := world.rollbot.incidents.incidents.get("payments/payment-router@42"))
            and len(i.seen) == 1000
            and i
        ),
        timeout=30,
        what="all 1,000 alerts in the incident",
    )
    assert len(incident.firing) == 1000
    card = await world.wait_for(world.card, timeout=10, what="the card")
    await world.wait_for(
        lambda: "1,000 alerts firing" in card_text(world),
        timeout=10,
        what="the coalesced count on the card",
    )
    assert "Firing alerts* (1,000)" in card_text(world)
    assert "×1,000" in card_text(world)  # identical summaries grouped, not listed 1,000 times
    assert len(tops(world)) == 1
    updates = [c for c in world.slack.calls_to("chat.update") if c.body.get("ts") == card["ts"]]
    assert 1 <= len(updates) <= 6, len(updates)
    thread = world.slack.thread(CHANNEL_ID, card["ts"])
    assert len(thread) <= 2, [m["text"] for m in thread]
    # every alert recorded: the 13 bodies are in the inbox, and counted; each is marked
    # processed once its alerts are applied (after the incident shows them: waited for)
    await eventually(
        lambda: _none_pending(world), timeout=10, what="every stored webhook marked processed"
    )
    metrics = (await httpx.AsyncClient().get(f"{world.url}/metrics")).text
    assert 'rollbot_alerts_total{service="payment-router",status="firing"} 1300.0' in metrics
    # The alerts read the Rollout from the watch's cache: the storm sent the API no read.
    assert len(world.kube.requests_matching("GET", "/rollouts/payment-router")) == rollout_reads


async def _none_pending(world: SimWorld) -> bool:
    return await world.rollbot.store.pending_webhooks(limit=100) == []


async def test_resolved_alerts_recover_then_resolve(progressing):
    world = progressing
    await canary_started(world)
    await send(world, [error_rate()])
    card = await world.wait_for(world.card, timeout=10, what="the card")
    await send(world, [error_rate(status="resolved")])

    def thread_lines() -> list[str]:
        return [m["text"] for m in world.slack.thread(CHANNEL_ID, card["ts"])]

    # The card (a coalesced update) and its thread (a line per change) are updated
    # separately, in either order under load: wait for both.
    await world.wait_for(
        lambda: (
            any("Resolved" in line for line in thread_lines())
            and ("Resolved" in card_text(world) or "resolved" in card_text(world))
        ),
        timeout=15,
        what="the incident resolved, in the thread and on the card",
    )
    assert any("ecovering" in line for line in thread_lines()), thread_lines()
    assert world.card()["ts"] == card["ts"]


async def test_unknown_service_counted_and_noticed_once(progressing):
    world = progressing
    stray = sim_alerts.alert("CheckoutDown", service="checkout")
    for _ in range(3):
        response = await send(world, [stray])
        assert response.status_code == 200
    await world.wait_for(
        lambda: world.slack.messages("C0FALLBACK"), timeout=10, what="the fallback notice"
    )

    async def all_processed() -> bool:  # an inbox row is marked after its notice was decided
        return await world.rollbot.store.pending_webhooks() == []

    await eventually(all_processed, what="the three deliveries processed")
    notices = world.slack.messages("C0FALLBACK")
    assert len(notices) == 1
    assert "CheckoutDown" in notices[0]["text"] and "`payment-router`" in notices[0]["text"]
    metrics = (await httpx.AsyncClient().get(f"{world.url}/metrics")).text
    assert 'rollbot_alerts_unknown_total{alertname="CheckoutDown"} 3.0' in metrics
    assert world.card() is None


@pytest.mark.parametrize("how", ["cut", "429"])
async def test_a_notice_whose_answer_was_lost_is_in_slack_once(progressing, how):
    world = progressing
    world.slack.lose_answers("chat.postMessage", how=how, channel="C0FALLBACK")
    response = await send(world, [sim_alerts.alert("CheckoutDown", service="checkout")])
    assert response.status_code == 200

    async def processed() -> bool:  # marked once the notice was posted (or given up)
        return await world.rollbot.store.pending_webhooks() == []

    await eventually(processed, what="the delivery processed")
    assert len(world.slack.lost_answers) == 1
    notices = world.slack.messages("C0FALLBACK")
    assert len(notices) == 1 and "CheckoutDown" in notices[0]["text"]


async def test_wrong_token_and_malformed_bodies(tmp_path):
    # PagerDuty is configured here, so that a page would be seen where it would go.
    async with SimWorld(speed=20, workdir=tmp_path, settings=SETTINGS, pagerduty=True) as world:
        world.slack.add_channel("C0FALLBACK", "rollbot-alerts")
        assert (await send(world, [error_rate()], token="wrong")).status_code == 401
        assert (await send(world, [error_rate()], token=None)).status_code == 401
        async with httpx.AsyncClient() as client:
            bad = await client.post(
                f"{world.url}/webhooks/alertmanager",
                content=b'{"version": "3", "alerts": []}',
                headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"},
            )
            assert bad.status_code == 400 and "version" in bad.json()["error"]
            metrics = (await client.get(f"{world.url}/metrics")).text
        # Nothing to wait for: the receiver answers 401 and 400 only after deciding not to
        # process (it starts its background task only on the accepted path, and counts
        # every outcome first), and none was accepted.
        outcomes = "rollbot_alertmanager_webhooks_total{outcome="
        assert f'{outcomes}"unauthorized"}} 2.0' in metrics
        assert f'{outcomes}"invalid"}} 1.0' in metrics
        assert f'{outcomes}"accepted"}}' not in metrics
        assert await world.rollbot.store.pending_webhooks() == []
        assert world.card() is None
        assert world.rollbot.incidents.incidents == {}
        # The on-call was never paged by a forged alert: nothing queued for PagerDuty,
        # nothing sent to it, no direct message, no mention of them or their group.
        far = datetime.now(UTC) + timedelta(days=1)
        assert await world.rollbot.store.due_outbox(far) == []
        assert world.pd.events() == [] and world.pd.incidents() == []
        assert world.slack.direct_messages(ONCALL[0]) == []
        said = [json.dumps(c.body) for c in world.slack.calls if c.path.startswith("/api/chat.")]
        assert not [s for s in said if ONCALL[0] in s or USERGROUP in s], said


async def test_an_alert_whose_card_met_a_429_is_posted_by_the_replay(tmp_path):
    """Issue 15: the first delivery opens checkout's incident (fully rolled out: no watch
    event will post its card), then its card meets Slack's 429 past every retry; the
    webhook stays pending (a temporary failure), the leader's replay delivers it again,
    and the card is posted then, once."""
    async with SimWorld(speed=600, workdir=tmp_path, checkout=True, settings=SETTINGS) as world:
        world.slack.force_ratelimit("chat.postMessage", retry_after=1, times=4)
        alert = sim_alerts.alert(
            "RollbotErrorRateHigh",
            service="checkout",
            labels={"slo": "error_rate"},
            summary="checkout: 5xx ratio 9 % on the new tax engine (SLO < 1 %)",
        )
        response = await send(world, [alert])
        assert response.status_code == 200 and response.json()["status"] == "accepted"

        async def processed() -> bool:
            rows = await world.rollbot.store.pending_webhooks()
            return not [r for r in rows if r.source == "alertmanager"]

        # The first delivery failed for want of Slack: left pending, no card yet.
        await eventually(
            lambda: world.slack.calls_to("chat.postMessage"), timeout=20, what="the 429s"
        )
        await world.wait_for(
            lambda: world.card("checkout"), timeout=40, what="the card, posted by the replay"
        )
        await eventually(processed, timeout=20, what="the webhook marked processed")
        cards = [m for m in tops(world) if "checkout" in json.dumps(m)]
        assert len(cards) == 1  # one card, however many times the webhook was delivered


async def test_a_stale_firing_replayed_after_its_resolve_changes_nothing(tmp_path):
    """Issue 15: a firing webhook was stored and never processed (a replica died, or a
    standby left it to the leader's replay) while the resolve went straight to the leader:
    the replay comes after the resolve. Alertmanager names an occurrence by its startsAt,
    which the resolve ended, so the late firing is stale: the incident is not reopened,
    and PagerDuty gets one trigger and one resolve."""
    async with SimWorld(
        speed=600, workdir=tmp_path, pagerduty=True, checkout=True, settings=SETTINGS
    ) as world:
        started = datetime.now(UTC) - timedelta(minutes=2)

        def occurrence(status: str) -> dict:
            return sim_alerts.alert(
                "RollbotErrorRateHigh",
                service="checkout",
                status=status,
                labels={"slo": "error_rate"},
                summary="checkout: 5xx ratio 9 % (SLO < 1 %)",
                starts_at=started,  # one occurrence: its firing and its resolve
                ends_at=datetime.now(UTC) if status == "resolved" else None,
            )

        firing, resolved = occurrence("firing"), occurrence("resolved")
        assert (await send(world, [firing])).status_code == 200
        incident = await world.wait_for(
            lambda: next(
                (i for i in world.pd.incidents() if "checkout" in i["incident_key"]), None
            ),
            timeout=30,
            what="checkout's page",
        )
        # The stale copy, stored as the replica that received it did, never processed.
        await world.rollbot.store.store_webhook(
            "alertmanager", {}, json.dumps(sim_alerts.webhook([firing]))
        )
        assert (await send(world, [resolved])).status_code == 200

        async def replayed_and_delivered() -> bool:
            far = datetime.now(UTC) + timedelta(days=1)
            return (
                await world.rollbot.store.pending_webhooks() == []
                and await world.rollbot.store.due_outbox(far) == []
            )

        await eventually(replayed_and_delivered, timeout=30, what="the stale copy replayed")
        await world.wait_for(
            lambda: world.pd.incident(incident["id"])["status"] == "resolved",
            timeout=30,
            what="the PagerDuty incident resolved",
        )
        key = incident["incident_key"]  # checkout's (payment-router's canary pages too)
        events = [e for e in world.pd.events() if e.get("dedup_key") == key]
        assert [e["event_action"] for e in events] == ["trigger", "resolve"], events
        assert [i["id"] for i in world.pd.incidents() if i["incident_key"] == key] == [
            incident["id"]
        ]
        [checkout] = [
            i for i in world.rollbot.incidents.incidents.values() if i.service == "checkout"
        ]
        assert checkout.state.value in ("recovering", "resolved"), checkout
