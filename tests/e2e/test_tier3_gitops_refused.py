"""A Tier 3 revert the host refuses for good (issue 18): said, counted, handed to a person.

Aspects under test: with `merge: rollbot` on a branch GitHub protects (one approving
review, a `ci` check) and neither given, rollbot's merge is refused (405); the revert stops
there: the thread says why once, the card says "stopped" with the reason and offers
"Record Tier 3 revert…" again (to finish by hand) and no Approve; the pull request is left
open, not merged; the step is parked and counted in /metrics
(`rollbot_outbox_parked_total{kind="gitops"}`), and the audit log has `tier3-failed`.
"""

from __future__ import annotations

import json

import httpx
import pytest

from bot.sim import world as sim_world
from bot.sim.harness import CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from tests.e2e.tier3 import card_with_start, prepared_modal

pytestmark = pytest.mark.timeout(150)


async def test_a_merge_refused_for_good_stops_the_revert_and_says_why() -> None:
    async with SimWorld(speed=60, gitops="github") as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        world.code_host.protect(sim_world.GITOPS_PROJECT, "main", approvals=1, checks=("ci",))
        card = await card_with_start(world)
        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world)
        sent = world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1])
        assert (await sent.send()).status_code == 200
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "tier3_approve") and c,
            timeout=30,
            what="the card with Approve Tier 3 revert",
        )
        assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
        card = await world.wait_for(
            lambda: (c := world.card()) and "stopped" in json.dumps(c) and c,
            timeout=30,
            what="the card saying the revert stopped",
        )
        text = json.dumps(card, ensure_ascii=False)
        assert "pull request #1" in text and "finish by hand" in text
        assert world.button(card, "revert_open") is not None
        assert world.button(card, "tier3_approve") is None
        pull = world.code_host.pulls(sim_world.GITOPS_PROJECT)[0]
        assert pull["state"] == "open" and pull["merged"] is False

        def stopped() -> list[str]:
            thread = world.slack.thread(CHANNEL_ID, card["ts"])
            return [str(m.get("text")) for m in thread if "revert stopped" in str(m.get("text"))]

        said = await world.wait_for(stopped, timeout=20, what="the thread saying it stopped")
        assert len(said) == 1, said
        assert "approving review is required" in said[0] and '"ci" is expected' in said[0]
        failed = [
            r.entry
            for r in await world.rollbot.store.audit_entries()
            if r.entry.action == "tier3-failed"
        ]
        assert len(failed) == 1 and failed[0].result == "failed"
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{world.url}/metrics")).text
        assert 'rollbot_outbox_parked_total{kind="gitops"} 1.0' in metrics
