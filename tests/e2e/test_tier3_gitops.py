"""Tier 3 run by rollbot, end to end (issue 18): a real Git repository over smart HTTP, the
GitHub sim over it, Argo CD's sync and the Argo Rollouts controller sims, rollbot serving
signed Slack requests.

The world (`SimWorld(gitops="github")`): payment-router's desired state is in the GitOps
repository `platform/configs`; 1.13.0 was released by a commit Argo CD synced, so revision
42's pod template carries that commit's sha.

Aspects under test:
- the card offers "Start Tier 3 revert…" (no "Record Tier 3 revert…"); clicking it opens a
  modal at once, then shows the prepared revert: the release commit, `git revert` applied
  cleanly, the branch, the files and the diff (the kustomization's tag going back to
  1.12.4); nothing is pushed yet;
- a second responder clicking Start meanwhile gets the same prepared revert taken over, not
  a second branch; once confirmed, a click tells who started it and where it stands;
- confirming pushes one branch named for the incident and opens one pull request, labelled,
  its body naming the incident and requester; the card says it waits for a second person
  and offers "Approve Tier 3 revert";
- the requester cannot approve (told so, with a break-glass button), and nothing merges;
- a second person (an owner) approves: the pull request is merged by a real merge commit
  whose message names the incident, the requester and the approver; Argo CD syncs it; the
  Rollout gets a new revision on the stable image; the card says "Tier 3 done, verified";
- every step is in the thread and the audit chain (prepared, approved, opened, merged,
  verified), and the chain verifies;
- exactly once: one branch, one pull request, one merge, one push.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.sim import world as sim_world
from bot.sim.harness import CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(180)

PROJECT = sim_world.GITOPS_PROJECT


def card_text(world: SimWorld) -> str:
    return json.dumps(world.card() or {}, ensure_ascii=False)


def thread(world: SimWorld) -> list[str]:
    card = world.card()
    assert card is not None
    return [str(m.get("text") or "") for m in world.slack.thread(CHANNEL_ID, card["ts"])]


async def actions(world: SimWorld) -> list[str]:
    return [
        r.entry.action
        for r in await world.rollbot.store.audit_entries()
        if r.entry.action.startswith("tier3-")
    ]


async def prepared_modal(world: SimWorld, user: tuple[str, str]) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        views = world.slack.open_views(user[0])
        if views and views[-1].get("callback_id") == "tier3_confirm":
            return dict(views[-1])
        return None

    return await eventually(ready, timeout=30, interval=0.05, what="the prepared revert modal")


async def test_tier3_revert_from_the_card_to_verified() -> None:
    async with SimWorld(speed=60, gitops="github") as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        github = world.code_host
        repo = world.gitops_repo
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "tier3_start") and c,
            timeout=60,
            what="the card with Start Tier 3 revert",
        )
        assert world.button(card, "revert_open") is None

        # Start: a modal at once, then the prepared revert. Nothing pushed.
        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world, ONCALL)
        shown = json.dumps(view["blocks"], ensure_ascii=False)
        assert world.release_sha[:12] in shown and "applied cleanly" in shown
        assert 'newTag: \\"1.12.4\\"' in shown or "1.12.4" in shown
        assert "kustomization.yaml" in shown
        branches = set(repo.branches())
        assert branches == {"main"}
        assert world.git.pushes() == []

        # Confirm: one branch, one pull request.
        sent = await world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1]).send()
        assert sent.status_code == 200
        await world.wait_for(
            lambda: "waiting for a second person" in card_text(world),
            timeout=30,
            what="the card waiting for approval",
        )
        revert_branches = [b for b in repo.branches() if b.startswith("rollbot/revert/")]
        assert len(revert_branches) == 1
        pulls = github.pulls(PROJECT)
        assert len(pulls) == 1 and pulls[0]["head"]["ref"] == revert_branches[0]
        assert {label["name"] for label in pulls[0]["labels"]} >= {"rollbot", "tier3-revert"}
        assert "payments/payment-router@42" in pulls[0]["body"]
        card = world.card()
        assert card is not None and world.button(card, "tier3_approve") is not None

        # The requester cannot approve their own revert.
        assert (await world.click(card, "tier3_approve")).status_code == 200
        await world.wait_for(
            lambda: any(
                "You started this revert" in str(e.get("text")) for e in world.slack.ephemerals
            ),
            timeout=20,
            what="the requester refused",
        )
        assert github.pulls(PROJECT)[0]["merged"] is False

        # A second person approves: merged, synced, verified.
        assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
        await world.wait_for(
            lambda: "Tier 3 done, verified" in card_text(world),
            timeout=90,
            what="the card saying Tier 3 done, verified",
        )
        pull = github.pulls(PROJECT)[0]
        assert pull["merged"] is True
        merge = repo.commit(pull["merge_commit_sha"])
        assert len(merge.parents) == 2
        assert "Requested-by: U0ONCALL" in merge.message or ONCALL[0] in merge.message
        assert LEAD[0] in merge.message and "payments/payment-router@42" in merge.message
        rollout = world.kube.get("rollouts", "payments", "payment-router")
        assert rollout is not None
        image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == sim_world.STABLE_IMAGE
        revision = int(rollout["metadata"]["annotations"]["rollout.argoproj.io/revision"])
        assert revision > 42

        lines = "\n".join(thread(world))
        assert "pull request #" in lines and "approved" in lines and "merged" in lines
        assert "Tier 3 done, verified" in lines
        done = await actions(world)
        for action in ("tier3-prepared", "tier3-opened", "tier3-approved", "tier3-merged"):
            assert action in done, done
        assert "tier3-verified" in done
        assert (await world.rollbot.store.verify_audit()).ok
        assert len(world.git.pushes()) == 1
