"""The workbench over a world with a GitOps repository: Tier 3 run by rollbot, driven only
through the workbench's HTTP API (as the page does), no browser.

The world is the demo's payment-router with `SimWorld(gitops="github")`: its desired state
in a real repository over smart HTTP, the GitHub sim over it, Argo CD syncing it.

Aspects under test:
- the GitOps panel shows the repository's branches with their heads, no pull request yet,
  and Argo CD's Application synced to the release commit;
- the card offers "Start Tier 3 revert…"; `/api/click` as the on-call engineer opens
  rollbot's modal for them alone (`/api/state["modal"]`), which shows the prepared revert
  (the release commit, the kustomization's diff back to 1.12.4) while nothing is pushed;
- `/api/submit` of that modal (no fields: a confirm) pushes one branch and opens one pull
  request: the panel shows the branch and "pull request #1" open, the card offers
  "Approve Tier 3 revert";
- `/api/click` on Approve as the requester: "You started this revert" shown to them only
  (Only visible to you), nothing merged;
- `/api/click` on Approve acting as @payments-lead (an owner): the panel shows the pull
  request merged, a new head on main and Argo CD synced to it; the card says "Tier 3 done,
  verified", and the audit panel shows the Tier 3 steps.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bot.sim import workbench
from bot.sim.harness import LEAD, ONCALL, USERGROUP, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def bench(tmp_path):
    async with SimWorld(speed=600, workdir=tmp_path, gitops="github") as world:
        world.slack.set_usergroup_members(USERGROUP, [ONCALL[0], LEAD[0]])
        wb = workbench.Workbench(world)
        transport = httpx.ASGITransport(app=wb.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://workbench") as client:
            yield world, client


async def state(client: httpx.AsyncClient, user: str = ONCALL[0]) -> dict[str, Any]:
    answer = await client.get("/api/state", params={"user": user})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def buttons(html: str) -> dict[str, tuple[str, str]]:
    """action_id → (message ts, block id) of the channel's buttons, as the page reads them."""
    out = {}
    for tag in re.findall(r"<button[^>]*data-action-id=[^>]*>", html):
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))
        if attrs.get("message-ts"):  # a channel message's (not an ephemeral's)
            out.setdefault(attrs["action-id"], (attrs["message-ts"], attrs.get("block-id", "")))
    return out


async def click(client: httpx.AsyncClient, action_id: str, user: str) -> None:
    """Click `action_id` on the channel as `user` sees it, as the page does."""

    async def shown() -> tuple[str, str] | None:
        return buttons((await state(client, user))["channel"]["html"]).get(action_id)

    ts, block_id = await eventually(shown, timeout=60, interval=0.05, what=f"a {action_id}")
    answer = await client.post(
        "/api/click",
        json={"message_ts": ts, "action_id": action_id, "block_id": block_id, "user": user},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": 200}


async def test_tier3_revert_through_the_workbench(bench):
    world, client = bench
    github, repo = world.code_host, world.gitops_repo
    release = world.release_sha

    panel = (await state(client))["panels"]["gitops"]
    assert "platform/configs on GitHub" in panel
    assert f"<code>{repo.head('main')[:12]}</code>" in panel
    assert "pull request" not in panel
    assert 'data-application="payment-router"' in panel and "Synced" in panel

    # Started by the on-call engineer: rollbot's modal, for them alone, with the diff.
    await click(client, "tier3_start", ONCALL[0])

    async def prepared() -> dict[str, Any] | None:
        modal = (await state(client))["modal"]
        return modal if modal and "kustomization.yaml" in modal["html"] else None

    modal = await eventually(prepared, timeout=30, interval=0.05, what="the prepared revert")
    assert release[:12] in modal["html"] and "1.12.4" in modal["html"]
    assert (await state(client, LEAD[0]))["modal"] is None
    assert set(repo.branches()) == {"main"} and world.git.pushes() == []

    # Confirmed from the modal: one branch, one pull request, shown in the panel.
    sent = await client.post(
        "/api/submit", json={"view_id": modal["id"], "values": {}, "user": ONCALL[0]}
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == 200 and not sent.json()["errors"]

    async def opened() -> str | None:
        panel = (await state(client))["panels"]["gitops"]
        return panel if 'data-request="#1"' in panel else None

    panel = await eventually(opened, timeout=30, interval=0.05, what="the pull request")
    branch = next(b for b in repo.branches() if b.startswith("rollbot/revert/"))
    assert f'data-branch="{branch}"' in panel
    assert re.search(r'data-request="#1".*?wb-request-state">open<', panel)
    assert len(github.pulls("platform/configs")) == 1

    # The requester cannot approve: told so, only them.
    await click(client, "tier3_approve", ONCALL[0])

    async def refused() -> bool:
        return "You started this revert" in (await state(client))["channel"]["html"]

    await eventually(refused, timeout=30, interval=0.05, what="the requester refused")
    assert "You started this revert" not in (await state(client, LEAD[0]))["channel"]["html"]
    assert github.pulls("platform/configs")[0]["merged"] is False

    # Approved by a second person, acting as them: merged, synced, verified.
    await click(client, "tier3_approve", LEAD[0])

    async def verified() -> dict[str, Any] | None:
        now = await state(client, LEAD[0])
        return now if "Tier 3 done, verified" in now["channel"]["html"] else None

    now = await eventually(verified, timeout=90, interval=0.1, what="Tier 3 done, verified")
    pull = github.pulls("platform/configs")[0]
    assert pull["merged"] is True
    merged = pull["merge_commit_sha"]
    assert repo.head("main") == merged

    async def synced() -> str | None:
        panel = (await state(client))["panels"]["gitops"]
        return panel if f"revision <code>{merged[:12]}</code>" in panel else None

    panel = await eventually(synced, timeout=30, interval=0.05, what="Argo CD synced the merge")
    assert re.search(r'data-request="#1".*?wb-request-state">merged<', panel)
    assert f'data-branch="main"><td>branch <code>main</code></td><td><code>{merged[:12]}' in panel
    assert "Synced" in panel
    audit = now["panels"]["audit"]
    for action in ("tier3-prepared", "tier3-opened", "tier3-approved", "tier3-merged"):
        assert action in audit
