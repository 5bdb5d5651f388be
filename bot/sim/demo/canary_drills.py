"""The payment-router canary drills: the bot's card, its tiers and the clicks on it.

* ``tier1-abort``: the canary pauses on an inconclusive analysis; Abort (Tier 1) is clicked
  and verified in the cluster, the audit log and the card;
* ``slo-alert``: analyses pass, only an Alertmanager SLO alert says the canary hurts: one
  card offering the three tiers, Tier 1 recommended and executed;
* ``tier2-circuit``: the circuit-breaker flag (Unleash) opened from the card by the on-call
  engineer (PagerDuty); payments' lead, an owner who is not on call, refused.
"""

from __future__ import annotations

import json
import time

from bot.sim import alerts as sim_alerts
from bot.sim.demo.drill import Drill, abort_and_verify
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from bot.sim.pagerduty import PagerDutySim
from bot.sim.unleash import UnleashSim

__all__ = ["drill_slo_alert", "drill_tier1_abort", "drill_tier2_circuit"]


async def drill_tier1_abort(drill: Drill, *, speed: float, timeout: float) -> str:
    async with SimWorld(speed=speed) as world:
        drill.mark("world up")
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
            timeout=timeout,
            what="a card with Abort (Tier 1)",
        )
        drill.mark("card posted (canary paused on an inconclusive analysis)")
        ack_ms, verified = await abort_and_verify(world, drill, card, timeout)
    return (
        f"ack {ack_ms:.0f} ms · abort verified in "
        f"{verified.get('seconds', float('nan')):.2f} s · audit chain checked"
    )


async def drill_slo_alert(drill: Drill, *, speed: float, timeout: float) -> str:
    # Analyses pass: nothing but the SLO alert says the canary hurts customers.
    async with SimWorld(speed=min(speed, 20.0), analysis_at_25="Successful") as world:
        drill.mark("world up")
        await world.wait_for(
            lambda: (
                (world.kube.get("rollouts", "payments", "payment-router") or {})
                .get("status", {})
                .get("currentStepIndex", 0)
                >= 1
            ),
            timeout=timeout,
            what="the canary at 10 %",
        )
        drill.mark("canary at 10 %")
        drill.check(world.card() is None, "a card was posted before any signal")
        body = sim_alerts.webhook(
            [
                sim_alerts.alert(
                    "RollbotErrorRateHigh",
                    service="payment-router",
                    labels={"version": "canary", "slo": "error_rate"},
                    summary="payment-router canary: 5xx ratio 31 % (SLO < 2 %)",
                )
            ]
        )
        response = await sim_alerts.send(
            f"{world.url}/webhooks/alertmanager", ALERTMANAGER_TOKEN, body
        )
        drill.mark(f"Alertmanager webhook delivered (HTTP {response.status_code})")
        drill.check(response.status_code == 200, f"webhook answered HTTP {response.status_code}")
        card = await world.wait_for(
            lambda: (c := world.card()) and "Incident open" in json.dumps(c["blocks"]) and c,
            timeout=timeout,
            what="the incident card",
        )
        text = json.dumps(card["blocks"], ensure_ascii=False)
        drill.mark("incident card posted")
        for tier in ("Tier 1", "Tier 2", "Tier 3"):
            drill.check(tier in text, f"the card does not offer {tier}")
        recommended = "Tier 1" if "Recommended: Tier 1" in text else None
        drill.check(
            recommended == "Tier 1", "Tier 1 is not the recommendation for a canary in progress"
        )
        drill.mark(f"recommended: {recommended}")
        ack_ms, verified = await abort_and_verify(world, drill, card, timeout)
        tops = [
            m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m.get("ts"))
        ]
        drill.check(len(tops) == 1, f"{len(tops)} cards in the channel, expected one")
    return (
        f"one card, three tiers, recommended {recommended} executed · ack {ack_ms:.0f} ms"
        f" · abort verified in {verified.get('seconds', float('nan')):.2f} s"
    )


async def drill_tier2_circuit(drill: Drill, *, speed: float, timeout: float) -> str:
    """@oncall-engineer (on call in PagerDuty) opens the circuit from the card; confirmed
    open and served to SDKs; @payments-lead (an owner, not on call) is refused first."""
    flag = "payments.new-router.circuit-open"
    with UnleashSim() as unleash, PagerDutySim() as pd:
        unleash.add_flag(flag)
        pd.add_user("PUSER1", "On-call Engineer", "oncall@example.com")  # Slack's @oncall-engineer
        pd.add_escalation_policy("PESC123", "Payments")
        pd.set_oncall("PESC123", ["PUSER1"])
        settings = {
            "flags": {"provider": "unleash", "url": unleash.url},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"}
                }
            },
        }
        env = {
            "ROLLBOT_FLAGS__API_TOKEN": unleash.admin_token,
            "ROLLBOT_FLAGS__CLIENT_TOKEN": unleash.client_token,
            "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token,
        }
        async with SimWorld(speed=speed, settings=settings, env=env) as world:
            world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
            drill.mark(
                f"world up (Unleash and PagerDuty sims; @{ONCALL[1]} on call, "
                f"@{LEAD[1]} an owner not on call)"
            )
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                timeout=timeout,
                what="the card with Open circuit (Tier 2)",
            )
            drill.mark("card posted with Tier 2")

            def replies() -> str:
                return "\n".join(json.dumps(r.body) for r in world.slack.responses)

            await world.click(card, "circuit_open", user=LEAD)  # owners group, not on call
            await world.wait_for(
                lambda: "may not" in replies(),
                timeout=timeout,
                what="the refusal of an owner not on call",
            )
            drill.check(not unleash.enabled(flag), "an owner not on call flipped the flag")
            drill.mark(f"@{LEAD[1]} (owner, not on call) refused")

            clicked = time.monotonic()
            await world.click(card, "circuit_open", user=ONCALL)
            await world.wait_for(
                lambda: "Opened the circuit" in replies(),
                timeout=timeout,
                what="the on-call's flip confirmed",
            )
            confirmed = time.monotonic() - clicked
            drill.mark(f"@{ONCALL[1]} (on call) opened the circuit, read back on")
            drill.check(unleash.enabled(flag), "the flag does not read back on")
            line = await world.wait_for(
                lambda: next(
                    (
                        m["text"]
                        for m in world.slack.thread(CHANNEL_ID, card["ts"])
                        if "effective for SDKs after" in m["text"]
                    ),
                    None,
                ),
                timeout=timeout,
                what="SDKs served the flag on",
            )
            posted = time.monotonic() - clicked
            sdk = line.split("effective for SDKs after")[-1].strip()
            drill.mark(f"SDKs are served the flag on after {sdk} (thread line posted)")
            entries = [
                e.entry
                for e in await world.rollbot.store.audit_entries()
                if e.entry.action == "circuit-open"
            ]
            drill.check(
                [e.result for e in entries] == ["refused", "succeeded"],
                f"audit shows {[e.result for e in entries]}",
            )
            chain = await world.rollbot.store.verify_audit()
            drill.check(chain.ok, f"audit chain broken at {chain.first_bad_seq}")
    return (
        f"refused the owner not on call · flip confirmed {confirmed:.2f} s after the click"
        f" · SDKs served it {sdk} after the flip (reported in the thread at {posted:.2f} s)"
        " · audit chain checked"
    )
