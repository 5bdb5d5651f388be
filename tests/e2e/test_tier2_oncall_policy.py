"""Who may act, end to end: PagerDuty on-call (sim, over HTTPS through the real `pagerduty`
client) + the owners usergroup + break-glass, on Tier 2 and Tier 1.

Aspects under test:
- the engineer on call for the service's escalation policy (matched to Slack by email with
  users.lookupByEmail), though not in the owners group, may open the circuit and abort;
- an owners-group member who is not on call is refused Tier 2, told who is on call and that
  break-glass exists; with `break-glass <reason>` the flip runs, is posted loudly as a
  top-level message naming the group, and the audit entry carries the reason;
- someone outside the group may not break glass;
- PagerDuty down: the owners group may act, and the audit entry says it fell back.
"""

from __future__ import annotations

import json

import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, OUTSIDER, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.sim.pagerduty import PagerDutySim

pytestmark = pytest.mark.timeout(120)
FLAG = "payments.new-router.circuit-open"
PAGED = ("U0PAGED", "paged-engineer")  # on call in PagerDuty, not in the owners group


def responses_text(world: SimWorld) -> str:
    return "\n".join(json.dumps(r.body, ensure_ascii=False) for r in world.slack.responses)


@pytest.fixture
async def world_pd(tmp_path):
    with LaunchDarklySim() as ld, PagerDutySim() as pd:
        ld.add_flag("default", FLAG, on=False)
        pd.add_user("PUSER1", "Paged Engineer", "paged@example.com")
        pd.add_user("PUSER2", "On-call Engineer", "oncall@example.com")
        pd.add_escalation_policy("PESC123", "Payments")
        pd.set_oncall("PESC123", ["PUSER1"])
        settings = {
            "flags": {"provider": "launchdarkly", "url": ld.url, "project": "default"},
            "pagerduty": {"api_url": pd.url, "ca_file": pd.ca_file},
            "services": {
                "payment-router": {
                    "pagerduty": {"service_id": "PSVC123", "escalation_policy_id": "PESC123"}
                }
            },
        }
        env = {"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN, "ROLLBOT_PAGERDUTY__API_TOKEN": pd.token}
        async with SimWorld(speed=600, workdir=tmp_path, settings=settings, env=env) as world:
            world.slack.add_user(
                PAGED[0], PAGED[1], real_name="Paged Engineer", email="paged@example.com"
            )
            yield world, ld, pd


async def command(world: SimWorld, user: tuple[str, str], text: str, expect: str) -> str:
    before = len(world.slack.responses)
    await world.sender.slash_command(user[0], user[1], text).send()
    await world.wait_for(
        lambda: expect in responses_text(world) and len(world.slack.responses) > before,
        timeout=20,
        what=f"the reply to {text!r}",
    )
    return responses_text(world)


async def audits(world: SimWorld, action: str) -> list:
    return [e.entry for e in await world.rollbot.store.audit_entries() if e.entry.action == action]


async def test_on_call_engineer_outside_the_group_may_flip_and_abort(world_pd):
    world, ld, _ = world_pd
    await world.wait_for(lambda: world.card(), timeout=40, what="the card")
    await command(world, PAGED, "payment-router circuit open", "Opened the circuit")
    assert ld.is_on("default", FLAG)
    await command(world, PAGED, "payment-router abort", "Aborted `payments/payment-router`")
    (flip,) = await audits(world, "circuit-open")
    assert "on call" in flip.detail["authorised"]


async def test_owner_not_on_call_needs_break_glass_which_is_loud_and_audited(world_pd):
    world, ld, _ = world_pd
    await world.wait_for(lambda: world.card(), timeout=40, what="the card")
    text = await command(world, ONCALL, "payment-router circuit open", "may not")
    assert "break-glass" in text and "<@U0PAGED>" in text  # who is on call, and the way out
    assert not ld.is_on("default", FLAG)

    await command(
        world,
        ONCALL,
        "payment-router circuit open break-glass paged engineer unreachable, 5xx at 40 %",
        "Opened the circuit",
    )
    assert ld.is_on("default", FLAG)
    loud = [
        m
        for m in world.slack.messages(CHANNEL_ID)
        if "BREAK-GLASS" in (m.get("text") or "") and m.get("thread_ts") in (None, m["ts"])
    ]
    assert loud and "<!subteam^S0PAYMENTS>" in loud[0]["text"]
    assert "paged engineer unreachable" in loud[0]["text"]
    entries = await audits(world, "circuit-open")
    assert [e.result for e in entries] == ["refused", "succeeded"]
    assert entries[1].detail["break_glass"].startswith("paged engineer unreachable")


async def test_outsider_may_not_break_glass(world_pd):
    world, ld, _ = world_pd
    await world.wait_for(lambda: world.card(), timeout=40, what="the card")
    await command(world, OUTSIDER, "payment-router circuit open break-glass let me", "may not")
    assert not ld.is_on("default", FLAG)


async def test_pagerduty_down_falls_back_to_owners_and_says_so(world_pd):
    world, ld, pd = world_pd
    await world.wait_for(lambda: world.card(), timeout=40, what="the card")
    pd.set_down(True)
    text = await command(world, ONCALL, "payment-router circuit open", "Opened the circuit")
    assert "PagerDuty unavailable" in text  # the responder is told, not only the audit log
    assert ld.is_on("default", FLAG)
    (flip,) = await audits(world, "circuit-open")
    assert "PagerDuty unavailable" in flip.detail["authorised"]
    assert "fell back to the owners group" in flip.detail["authorised"]
