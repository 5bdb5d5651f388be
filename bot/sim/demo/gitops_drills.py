"""The GitOps drill: Tier 3 run by rollbot, a revert pull request approved by two people.

* ``tier3-revert``: payment-router's desired state is in a real GitOps repository served
  over smart HTTP (`SimWorld(gitops="github")`: git's own `git http-backend`, the GitHub sim
  over it, Argo CD's sync loop). The release 1.13.0 was a commit Argo CD synced; its canary
  pauses on an inconclusive analysis and the card offers "Start Tier 3 revert…". The on-call
  engineer starts it: the prepared revert (its diff) is shown before anything is pushed;
  confirmed, one branch is pushed and one labelled pull request opened. The requester is
  refused approving their own revert; payments' lead (made an owner) approves; rollbot
  merges by a real merge commit, Argo CD syncs it, the Rollout gets a new revision on the
  stable image, the card says "Tier 3 done, verified", and the audit chain verifies.

The same steps as tests/e2e/test_tier3_gitops.py, each checked and marked on the timeline.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.sim import world as sim_world
from bot.sim.demo.drill import Drill
from bot.sim.harness import CHANNEL_ID, LEAD, ONCALL, USERGROUP, SimWorld

__all__ = ["drill_tier3_revert"]

#: What the audit log must hold once the revert is verified, in this order of first record.
TIER3_STEPS = ("tier3-prepared", "tier3-opened", "tier3-approved", "tier3-merged", "tier3-verified")


def _text(value: Any) -> str:
    return json.dumps(value or {}, ensure_ascii=False)


async def drill_tier3_revert(drill: Drill, *, speed: float, timeout: float) -> str:
    """@oncall-engineer starts the revert, @payments-lead (an owner) approves it."""
    project = sim_world.GITOPS_PROJECT
    async with SimWorld(speed=speed, gitops="github") as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        repo, github = world.gitops_repo, world.code_host
        drill.mark(
            f"world up (GitOps repository {project} over smart HTTP, GitHub sim, Argo CD "
            f"syncing; release commit {world.release_sha[:12]}; @{LEAD[1]} an owner)"
        )
        card = await world.wait_for(
            lambda: (c := world.card()) and world.button(c, "tier3_start") and c,
            timeout=timeout,
            what="the card with Start Tier 3 revert…",
        )
        drill.mark("card posted (canary paused on an inconclusive analysis) with Tier 3")

        # Started by one person: the prepared revert is shown, nothing pushed.
        clicked = time.monotonic()
        response = await world.click(card, "tier3_start", user=ONCALL)
        drill.check(response.status_code == 200, f"Start answered HTTP {response.status_code}")

        def prepared() -> dict[str, Any] | None:
            views = world.slack.open_views(ONCALL[0])
            if views and views[-1].get("callback_id") == "tier3_confirm":
                return dict(views[-1])
            return None

        view = await world.wait_for(prepared, timeout=timeout, what="the prepared revert modal")
        shown = _text(view.get("blocks"))
        drill.check(world.release_sha[:12] in shown, "the modal does not name the release commit")
        drill.check("kustomization.yaml" in shown, "the modal does not show the diff's file")
        drill.check("1.12.4" in shown, "the diff does not set the image back to 1.12.4")
        how = "git revert, applied cleanly" if "applied cleanly" in shown else "image set back"
        drill.check(world.git.pushes() == [], "something was pushed before the confirm")
        drill.check(
            set(repo.branches()) == {"main"}, f"branches before the confirm: {repo.branches()}"
        )
        drill.mark(
            f"@{ONCALL[1]} started Tier 3: revert of {world.release_sha[:12]} prepared "
            f"({how}), diff shown, nothing pushed"
        )

        # Confirmed: one branch, one pull request with the revert diff.
        sent = await world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1]).send()
        drill.check(sent.status_code == 200, f"the confirm answered HTTP {sent.status_code}")
        await world.wait_for(
            lambda: "waiting for a second person" in _text(world.card()),
            timeout=timeout,
            what="the card waiting for a second person",
        )
        branches = [b for b in repo.branches() if b.startswith("rollbot/revert/")]
        pulls = github.pulls(project)
        drill.check(len(branches) == 1, f"{len(branches)} revert branches, expected one")
        if not drill.check(len(pulls) == 1, f"{len(pulls)} pull requests, expected one"):
            return "no pull request"
        pull = pulls[0]
        files = repo.diff("main", pull["head"]["ref"])
        drill.check(
            "kustomization.yaml" in files and "1.12.4" in files,
            "the pull request's diff does not set the image back",
        )
        labels = sorted(label["name"] for label in pull["labels"])
        drill.check({"rollbot", "tier3-revert"} <= set(labels), f"labels {labels}")
        drill.mark(
            f"pull request #{pull['number']} opened from {pull['head']['ref']} "
            f"(labels {', '.join(labels)}); card waits for a second person"
        )

        # The requester cannot approve their own revert.
        card = world.card() or card
        await world.click(card, "tier3_approve", user=ONCALL)
        await world.wait_for(
            lambda: any(
                "You started this revert" in str(e.get("text")) for e in world.slack.ephemerals
            ),
            timeout=timeout,
            what="the requester refused approving",
        )
        drill.check(github.pulls(project)[0]["merged"] is False, "the self-approval merged")
        drill.mark(f"@{ONCALL[1]} (the requester) refused approving their own revert")

        # A second person approves: merged, synced, verified.
        await world.click(card, "tier3_approve", user=LEAD)
        drill.mark(f"@{LEAD[1]} (an owner) approved")
        await world.wait_for(
            lambda: github.pulls(project)[0]["merged"],
            timeout=timeout,
            what="the pull request merged",
        )
        pull = github.pulls(project)[0]
        merge = repo.commit(pull["merge_commit_sha"])
        drill.check(len(merge.parents) == 2, "the merge is not a merge commit")
        drill.check(
            LEAD[0] in merge.message and "payments/payment-router@42" in merge.message,
            "the merge commit does not name the incident and the approver",
        )
        drill.mark(f"merged: {merge.sha[:12]} names the incident, requester and approver")

        def synced() -> bool:
            app = world.kube.get("applications", "argocd", sim_world.ROLLOUT) or {}
            sync = (app.get("status") or {}).get("sync") or {}
            return sync.get("status") == "Synced" and sync.get("revision") == merge.sha

        await world.wait_for(synced, timeout=timeout, what="Argo CD synced to the merge")
        drill.mark(f"Argo CD synced {merge.sha[:12]}")
        await world.wait_for(
            lambda: "Tier 3 done, verified" in _text(world.card()),
            timeout=timeout,
            what="the card saying Tier 3 done, verified",
        )
        verified = time.monotonic() - clicked
        rollout = world.kube.get("rollouts", sim_world.NAMESPACE, sim_world.ROLLOUT) or {}
        containers = rollout["spec"]["template"]["spec"]["containers"]
        image = containers[0]["image"]
        revision = int(rollout["metadata"]["annotations"]["rollout.argoproj.io/revision"])
        drill.check(image == sim_world.STABLE_IMAGE, f"the Rollout runs {image}")
        drill.check(revision > 42, f"the Rollout is at revision {revision}")
        drill.mark(f"Rollout revision {revision} on {image}; card says Tier 3 done, verified")

        # Every step in the thread and the audit chain.
        thread = "\n".join(
            str(m.get("text") or "") for m in world.slack.thread(CHANNEL_ID, card["ts"])
        )
        drill.check(
            "pull request #" in thread and "merged" in thread and "verified" in thread,
            "the thread does not tell every step",
        )
        records = [
            r
            for r in await world.rollbot.store.audit_entries()
            if r.entry.action.startswith("tier3-")
        ]
        done = [r.entry.action for r in records if r.entry.result == "succeeded"]
        for step in TIER3_STEPS:
            drill.check(step in done, f"no {step} in the audit log (have {done})")
        approvals = [
            (r.entry.actor, r.entry.result) for r in records if r.entry.action == "tier3-approved"
        ]
        drill.check(
            [result for _, result in approvals if result == "succeeded"] == ["succeeded"]
            and LEAD[0] in approvals[-1][0],
            f"approvals audited {approvals}, expected one by @{LEAD[1]}",
        )
        drill.check(
            any(result == "refused" and ONCALL[0] in actor for actor, result in approvals),
            f"the requester's own approval was not audited as refused: {approvals}",
        )
        chain = await world.rollbot.store.verify_audit()
        drill.check(chain.ok, f"audit chain broken at {chain.first_bad_seq}: {chain.reason}")
        drill.check(len(world.git.pushes()) == 1, f"{len(world.git.pushes())} pushes, expected one")
        drill.mark(
            f"audited ({', '.join(dict.fromkeys(r.entry.action for r in records))}), chain verified"
        )
    return (
        f"pull request #{pull['number']} approved by a second person, merged, synced, "
        f"verified {verified:.2f} s after Start · audit chain checked"
    )
