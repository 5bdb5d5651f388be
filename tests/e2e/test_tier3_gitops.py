"""Tier 3 run by rollbot, end to end (issue 18): a real Git repository over smart HTTP, the
GitHub sim over it, Argo CD's sync and the Argo Rollouts controller sims, rollbot serving
signed Slack requests.

The world (`SimWorld(gitops="github")`): payment-router's desired state is in the GitOps
repository `platform/configs`; 1.13.0 was released by a commit Argo CD synced, so revision
42's pod template carries that commit's sha.

Aspects under test:
- the card offers "Start Tier 3 revert…" (and "Record…" for a revert by hand); clicking it opens a
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
- the conflict fallback: a commit after the release changed the kustomization's tag line,
  so `git revert` of the release conflicts; the modal says so, naming the conflicting
  path, and that the stable image is set back instead; the base branch moving while the
  modal is open makes it stale (its confirmation refused, nothing pushed); the pushed
  commit (the one the fresh modal showed) has a subject that says
  that (not "Revert release …"), the file on the branch has the stable tag, and the merge
  is synced and verified on the stable image;
- a second click: a second responder (an owner) clicking Start while the first's prepared
  modal is open takes the revert over; the first confirming their stale modal is refused
  (told the second prepared it, nothing pushed); the second's confirmation sent twice (a
  Slack retry) pushes once and opens one pull request; a Start click afterwards says who
  started it "already" and where it stands, and pushes nothing;
- merge by branch protection (`gitops.merge: humans`): after the card's approval rollbot
  queues GitHub's auto-merge (the GraphQL mutation) and the card says branch protection
  merges it; nothing merges until the protected branch's required review and status check
  are there; then GitHub merges it, rollbot sees it, Argo CD syncs, verified;
- GitLab: the same happy path as a merge request (`!1`), merged by rollbot, verified;
  the answer to the request that opened it lost (a 502 after GitLab made it): said once,
  tried again, the merge request found, not opened twice;
- the code host down when the pull request is to be opened: said once in the thread
  ("keeps trying; nothing is lost"), retried with growing delays, one pull request opened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from bot.sim import world as sim_world
from bot.sim.harness import CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld
from tests.e2e.tier3 import card_with_start, prepared_modal
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
        # Recording stays beside Start, for a revert made by hand.
        assert world.button(card, "revert_open") is not None

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


async def start_card(world: SimWorld) -> dict[str, Any]:
    world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
    return await card_with_start(world)


async def confirm(world: SimWorld, user: tuple[str, str], view: dict[str, Any]) -> None:
    sent = await world.sender.view_submission(user[0], view, {}, user_name=user[1]).send()
    assert sent.status_code == 200
    await world.wait_for(
        lambda: "waiting for a second person" in card_text(world),
        timeout=30,
        what="the card waiting for approval",
    )


async def approve_and_verify(world: SimWorld) -> None:
    card = world.card()
    assert card is not None
    assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
    await world.wait_for(
        lambda: "Tier 3 done, verified" in card_text(world),
        timeout=90,
        what="the card saying Tier 3 done, verified",
    )
    rollout = world.kube.get("rollouts", "payments", "payment-router")
    assert rollout is not None
    image = rollout["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == sim_world.STABLE_IMAGE


def revert_branch(world: SimWorld) -> str:
    branches = [b for b in world.gitops_repo.branches() if b.startswith("rollbot/revert/")]
    assert len(branches) == 1, branches
    return branches[0]


KUSTOMIZATION = f"{sim_world.GITOPS_PATH}/kustomization.yaml"


async def test_a_conflicting_revert_sets_the_stable_image_back() -> None:
    async with SimWorld(speed=60, gitops="github") as world:
        repo = world.gitops_repo
        card = await start_card(world)
        # A hotfix changed the release's tag line after the release commit. Argo CD's poll
        # (3 minutes by default) has not come round to it: the Rollout still runs the
        # release the card is about.
        world.argocd.stop()
        hotfix_image = sim_world.CANARY_IMAGE.rsplit(":", 1)[0] + ":1.13.1"
        hotfix = repo.commit_files(
            "main",
            {KUSTOMIZATION: sim_world.gitops_files(hotfix_image)[KUSTOMIZATION]},
            "Hotfix payment-router 1.13.1",
        )

        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world, ONCALL)
        shown = json.dumps(view["blocks"], ensure_ascii=False)
        assert "conflicted" in shown and "set back instead" in shown
        assert f"conflicted in {KUSTOMIZATION}" in shown  # names the conflicting path
        assert sim_world.STABLE_IMAGE in shown
        assert "1.13.1" in shown and "1.12.4" in shown  # the diff: the hotfix's tag goes
        assert world.git.pushes() == []

        # The base moves while the modal is open; prepared again, the revert is another
        # commit: the first modal, stale, is refused and pushes nothing.
        other = repo.commit_files("main", {"README.md": "configs\n"}, "Add a README")
        world.slack.close_view(view["id"])  # the requester closes it without pushing
        assert (await world.click(card, "tier3_start")).status_code == 200
        fresh = await prepared_modal(world, ONCALL)
        assert fresh["private_metadata"] != view["private_metadata"]
        sent = await world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1]).send()
        assert sent.status_code == 200
        await world.wait_for(
            lambda: any(
                e["user"] == ONCALL[0] and "This modal is stale" in str(e.get("text"))
                for e in world.slack.ephemerals
            ),
            timeout=20,
            what="the stale modal refused",
        )
        assert world.git.pushes() == []

        await confirm(world, ONCALL, fresh)
        branch = revert_branch(world)
        head = repo.head(branch)
        assert head is not None and fresh["private_metadata"].endswith(head)
        commit = repo.commit(head)
        assert commit.parents == (other,) and repo.is_ancestor(hotfix, other)
        subject = commit.message.splitlines()[0]
        assert subject == (
            f"Set payment-router back to its stable image (revert of "
            f"{world.release_sha[:12]} conflicted)"
        )
        assert f"git revert conflicted in {KUSTOMIZATION}" in commit.message
        assert "Requested-by: " in commit.message and ONCALL[0] in commit.message
        assert f"Reverts: {world.release_sha}" in commit.message
        tag = repo.show(head, KUSTOMIZATION)
        assert tag is not None and 'newTag: "1.12.4"' in tag
        assert repo.show(head, f"{sim_world.GITOPS_PATH}/rollout.yaml") == repo.show(
            hotfix, f"{sim_world.GITOPS_PATH}/rollout.yaml"
        )
        pulls = world.code_host.pulls(PROJECT)
        assert len(pulls) == 1 and "conflicted" in pulls[0]["body"]
        assert any("the stable image is set back instead" in line for line in thread(world))

        # Approved and merged; Argo CD's next poll syncs the merge (hotfix and revert).
        card = world.card()
        assert card is not None
        assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
        await world.wait_for(
            lambda: world.code_host.pulls(PROJECT)[0]["merged"],
            timeout=30,
            what="the pull request merged",
        )
        merged = world.code_host.pulls(PROJECT)[0]["merge_commit_sha"]
        assert 'newTag: "1.12.4"' in (repo.show(merged, KUSTOMIZATION) or "")
        world.argocd.run_in_thread(interval=0.05)
        await world.wait_for(
            lambda: "Tier 3 done, verified" in card_text(world),
            timeout=90,
            what="the card saying Tier 3 done, verified",
        )
        rollout = world.kube.get("rollouts", "payments", "payment-router")
        assert rollout is not None
        template = rollout["spec"]["template"]
        assert template["spec"]["containers"][0]["image"] == sim_world.STABLE_IMAGE
        assert template["metadata"]["annotations"]["rollbot.io/git-sha"] == merged
        assert len(world.git.pushes()) == 1


async def test_a_second_click_takes_over_then_finds_the_revert_under_way() -> None:
    async with SimWorld(speed=60, gitops="github") as world:
        github = world.code_host
        card = await start_card(world)

        # The on-call prepares, and clicks Start again: the same revert commit.
        assert (await world.click(card, "tier3_start")).status_code == 200
        stale = await prepared_modal(world, ONCALL)
        key = str(stale["private_metadata"]).split()[0]
        first = await world.rollbot.gitops.case(key)
        assert first is not None and first.head_sha
        assert (await world.click(card, "tier3_start")).status_code == 200
        await world.wait_for(
            lambda: [
                v
                for v in world.slack.open_views(ONCALL[0])
                if v.get("callback_id") == "tier3_confirm"
            ][1:],
            timeout=30,
            what="the on-call's second prepared modal",
        )
        again = await world.rollbot.gitops.case(key)
        assert again is not None and again.version > first.version
        assert again.requester == ONCALL[0] and again.requested_at == first.requested_at
        assert again.head_sha == first.head_sha

        # The lead clicks Start meanwhile: the lead takes it over.
        assert (await world.click(card, "tier3_start", user=LEAD)).status_code == 200
        view = await prepared_modal(world, LEAD)
        assert view["private_metadata"].split()[0] == key  # the same revert

        # The on-call confirms their modal, now stale: refused, told who prepared it.
        sent = await world.sender.view_submission(ONCALL[0], stale, {}, user_name=ONCALL[1]).send()
        assert sent.status_code == 200
        refusal = await world.wait_for(
            lambda: [
                e
                for e in world.slack.ephemerals
                if e["user"] == ONCALL[0] and "prepared this revert" in str(e.get("text"))
            ],
            timeout=20,
            what="the stale confirmation refused",
        )
        assert f"<@{LEAD[0]}>" in refusal[0]["text"]
        assert world.git.pushes() == [] and github.pulls(PROJECT) == []

        # The lead's confirmation, delivered twice (Slack retrying it): one push, one PR.
        submission = world.sender.view_submission(LEAD[0], view, {}, user_name=LEAD[1])
        first, again = await asyncio.gather(submission.send(), submission.send())
        assert first.status_code == 200 and again.status_code == 200
        await world.wait_for(
            lambda: "waiting for a second person" in card_text(world),
            timeout=30,
            what="the card waiting for approval",
        )
        await asyncio.wait_for(world.rollbot.work.join(), timeout=30)
        branch = revert_branch(world)
        assert len(world.git.pushes()) == 1
        assert [p["head"]["ref"] for p in github.pulls(PROJECT)] == [branch]
        assert len(github.requests_to("POST", f"/repos/{PROJECT}/pulls")) == 1
        commit = world.gitops_repo.commit(branch)
        assert f"(Slack {LEAD[0]})" in commit.message and ONCALL[0] not in commit.message

        # The card offers Approve now, no Start; a Start click on the card as a client still
        # showed it says who started the revert and where it stands, and pushes nothing.
        now = world.card()
        assert now is not None and world.button(now, "tier3_start") is None
        for user in (ONCALL, LEAD):
            assert (await world.click(card, "tier3_start", user=user)).status_code == 200

            async def told(user: tuple[str, str] = user) -> str | None:
                views = world.slack.open_views(user[0])
                text = json.dumps(views[-1]["blocks"], ensure_ascii=False) if views else ""
                return text if "already" in text else None

            text = await eventually(told, timeout=20, interval=0.05, what="the revert under way")
            assert f"<@{LEAD[0]}> started the Tier 3 revert" in text
            assert "waits for a second person" in text
        assert len(world.git.pushes()) == 1
        assert len(github.requests_to("POST", f"/repos/{PROJECT}/pulls")) == 1
        assert world.gitops_repo.branches().keys() == {"main", branch}

        # The on-call (not the requester now) approves: merged, verified.
        assert (await world.click(now, "tier3_approve")).status_code == 200
        await world.wait_for(
            lambda: "Tier 3 done, verified" in card_text(world),
            timeout=90,
            what="the card saying Tier 3 done, verified",
        )
        assert len(github.pulls(PROJECT)) == 1 and len(world.git.pushes()) == 1


async def test_branch_protection_merges_when_the_merge_is_left_to_humans() -> None:
    humans = {"services": {"payment-router": {"gitops": {"merge": "humans"}}}}
    async with SimWorld(speed=60, gitops="github", settings=humans) as world:
        github = world.code_host
        github.protect(PROJECT, "main", approvals=1, checks=("ci",))
        card = await start_card(world)
        assert (await world.click(card, "tier3_start")).status_code == 200
        await confirm(world, ONCALL, await prepared_modal(world, ONCALL))
        number = github.pulls(PROJECT)[0]["number"]

        card = world.card()
        assert card is not None
        assert (await world.click(card, "tier3_approve", user=LEAD)).status_code == 200
        await world.wait_for(
            lambda: "branch protection merges it" in card_text(world),
            timeout=30,
            what="the card saying branch protection merges it",
        )
        queued = github.requests_to("POST", "/graphql")
        assert len(queued) == 1 and "enablePullRequestAutoMerge" in json.dumps(queued[0].body)
        assert github.requests_to("PUT", f"/repos/{PROJECT}/pulls/{number}/merge") == []
        pull = github.pull(PROJECT, number)
        assert pull["merged"] is False and pull["auto_merge"] is not None
        await world.wait_for(
            lambda: any("will merge once branch protection allows" in t for t in thread(world)),
            timeout=20,
            what="the thread saying branch protection merges it",
        )

        # A review on GitHub, still no CI: not merged. CI passes: GitHub merges it.
        github.approve(PROJECT, number, "lead-on-github")
        assert github.pull(PROJECT, number)["merged"] is False
        github.set_status(PROJECT, pull["head"]["sha"], "ci", "success")
        pull = github.pull(PROJECT, number)
        assert pull["merged"] is True
        await world.wait_for(
            lambda: "Tier 3 done, verified" in card_text(world),
            timeout=90,
            what="the card saying Tier 3 done, verified",
        )
        merge = world.gitops_repo.commit(pull["merge_commit_sha"])
        assert len(merge.parents) == 2
        assert f"Approved-by: {LEAD[0]}" in merge.message
        assert "payments/payment-router@42" in merge.message
        assert github.requests_to("PUT", f"/repos/{PROJECT}/pulls/{number}/merge") == []
        lines = "\n".join(thread(world))
        assert "merged" in lines and "Tier 3 done, verified" in lines
        assert "tier3-merged" in await actions(world)


async def test_gitlab_merge_request_to_verified() -> None:
    async with SimWorld(speed=60, gitops="gitlab") as world:
        gitlab = world.code_host
        card = await start_card(world)
        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world, ONCALL)
        shown = json.dumps(view["blocks"], ensure_ascii=False)
        assert world.release_sha[:12] in shown and "applied cleanly" in shown
        assert "merge request" in shown
        assert world.git.pushes() == []

        # GitLab opens the merge request, but its answer is lost on the way back: the
        # step is tried again, finds it, and opens no second one.
        gitlab.lose_next(1, method="POST", path_contains="/merge_requests")
        await confirm(world, ONCALL, view)
        branch = revert_branch(world)
        opened = gitlab.requests_to("POST", f"/projects/{PROJECT}/merge_requests")
        assert [r.status for r in opened] == [502]
        down = [t for t in thread(world) if "keeps trying; nothing is lost" in t]
        assert len(down) == 1 and "GitLab" in down[0]
        mrs = gitlab.merge_requests(PROJECT)
        assert len(mrs) == 1 and mrs[0]["source_branch"] == branch
        assert mrs[0]["iid"] == 1 and mrs[0]["target_branch"] == "main"
        assert set(mrs[0]["labels"]) >= {"rollbot", "tier3-revert"}
        assert "payments/payment-router@42" in mrs[0]["description"]
        await world.wait_for(
            lambda: any("merge request !1" in t for t in thread(world)),
            timeout=20,
            what="the thread naming merge request !1",
        )

        await approve_and_verify(world)
        mr = gitlab.merge_request(PROJECT, 1)
        assert mr["state"] == "merged"
        merge = world.gitops_repo.commit(mr["merge_commit_sha"])
        assert LEAD[0] in merge.message and "payments/payment-router@42" in merge.message
        lines = "\n".join(thread(world))
        assert "merge request !1" in lines and "pull request" not in lines
        assert len(gitlab.merge_requests(PROJECT)) == 1 and len(world.git.pushes()) == 1
        assert (await world.rollbot.store.verify_audit()).ok


async def test_the_code_host_down_is_said_once_and_the_pull_request_opened_once() -> None:
    async with SimWorld(speed=60, gitops="github") as world:
        github = world.code_host
        card = await start_card(world)
        assert (await world.click(card, "tier3_start")).status_code == 200
        view = await prepared_modal(world, ONCALL)

        github.fail_next(3, 503)
        sent = await world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1]).send()
        assert sent.status_code == 200
        await world.wait_for(
            lambda: "waiting for a second person" in card_text(world),
            timeout=60,
            what="the card waiting for approval",
        )
        seen = github.requests
        refused = [i for i, r in enumerate(seen) if r.status == 503]
        assert len(refused) == 3
        # Tried again 1, 2 then 4 s later (GitHub answers at the fourth try).
        tries = [seen[i].at for i in refused] + [seen[refused[-1] + 1].at]
        gaps = [b - a for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= 0.9 and gaps[1] >= 1.8 and gaps[2] >= 3.6, gaps
        down = [t for t in thread(world) if "keeps trying; nothing is lost" in t]
        assert len(down) == 1 and "GitHub" in down[0]
        assert len(github.requests_to("POST", f"/repos/{PROJECT}/pulls")) == 1
        assert len(github.pulls(PROJECT)) == 1 and len(world.git.pushes()) == 1
        revert_branch(world)
        assert "tier3-opened" in await actions(world)
