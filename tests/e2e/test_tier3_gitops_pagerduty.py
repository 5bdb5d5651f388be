"""Tier 3 run by rollbot tells PagerDuty every step (issue 18: "every step goes to the
thread, a PagerDuty note and the audit chain").

Aspects under test, with PagerDuty on (`SimWorld(gitops="github", pagerduty=True)`: the
on-call from PagerDuty may start, an owner approves): the incident of the card gets one
note per step, in order (confirmed, opened, approved, merged, verified), each naming who and
what (the branch, the pull request, the approver by name, the merge); the pull request's
description names the requester and links the PagerDuty incident and the runbook.
"""

from __future__ import annotations

import json

import pytest

from bot.sim import world as sim_world
from bot.sim.harness import LEAD, ONCALL, USERGROUP, SimWorld
from tests.e2e.tier3 import card_with_start, prepared_modal

pytestmark = pytest.mark.timeout(180)
KEY = "rollbot/payment-router/payments/payment-router@42"
PROJECT = sim_world.GITOPS_PROJECT
STEPS = ("tier3-confirmed", "tier3-opened", "tier3-approved", "tier3-merged", "tier3-verified")


async def test_every_tier3_step_is_a_pagerduty_note() -> None:
    async with SimWorld(speed=60, gitops="github", pagerduty=True) as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        card = await card_with_start(world)
        incident = await world.wait_for(
            lambda: world.pd.incident_by_key(KEY), timeout=30, what="the PagerDuty incident"
        )
        card = await world.wait_for(
            lambda: (c := world.card()) and "|PagerDuty incident>" in json.dumps(c) and c,
            timeout=30,
            what="the card linking the PagerDuty incident",
        )
        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world)
        sent = world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1])
        assert (await sent.send()).status_code == 200
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "tier3_approve") and c,
            timeout=30,
            what="the card with Approve Tier 3 revert",
        )
        # The pull request names the requester and links the incident and the runbook.
        body = world.code_host.pulls(PROJECT)[0]["body"]
        assert "Requested by On-call Engineer (Slack `U0ONCALL`)" in body
        assert f"PagerDuty incident: {incident['html_url']}" in body
        assert f"Runbook: {world.url}/runbooks/payment-router" in body
        assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
        await world.wait_for(
            lambda: "Tier 3 done, verified" in json.dumps(world.card() or {}),
            timeout=90,
            what="the card saying Tier 3 done, verified",
        )

        def tier3_notes() -> list[str]:
            return [
                n["content"]
                for n in world.pd.notes(incident["id"])
                if "rollbot: tier3-" in n["content"]
            ]

        notes = await world.wait_for(
            lambda: (found := tier3_notes()) and len(found) >= len(STEPS) and found,
            timeout=30,
            what="a PagerDuty note per Tier 3 step",
        )
        steps = [next(s for s in STEPS if f"rollbot: {s} " in n) for n in notes]
        assert steps == list(STEPS), notes
        by_step = dict(zip(steps, notes, strict=True))
        assert "rollbot/revert/payment-router-r42-" in by_step["tier3-confirmed"]
        assert "pull request #1" in by_step["tier3-opened"]
        assert "by Payments Lead" in by_step["tier3-approved"]  # the approver, by name
        assert "Merged pull request #1" in by_step["tier3-merged"]
        assert "verified" in by_step["tier3-verified"]
