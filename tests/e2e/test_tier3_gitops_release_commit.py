"""Which commit Tier 3 reverts (issue 18): the pod template's annotation, or, when the
Rollout has none, the revision Argo CD's Application is synced at.

Aspects under test: with `gitops.sha_annotation` naming an annotation CI did not write,
Start Tier 3 revert… still prepares the revert of the release commit (the one Argo CD
synced the release from); without the annotation and without an Application, the modal
says the release commit is unknown and nothing is prepared or pushed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.sim.harness import ONCALL, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)


def settings(application: bool) -> dict[str, Any]:
    gitops: dict[str, Any] = {"sha_annotation": "ci.example.com/release-sha"}
    if not application:
        gitops["application"] = None
    return {"services": {"payment-router": {"gitops": gitops}}}


async def modal_after_start(world: SimWorld) -> dict[str, Any]:
    card = await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "tier3_start") and c,
        timeout=60,
        what="the card with Start Tier 3 revert",
    )
    assert (await world.click(card, "tier3_start")).status_code == 200

    async def settled() -> dict[str, Any] | None:
        views = world.slack.open_views(ONCALL[0])
        if views and "Preparing" not in json.dumps(views[-1]["blocks"]):
            return dict(views[-1])
        return None

    return await eventually(settled, timeout=30, interval=0.05, what="the modal settled")


async def test_without_the_annotation_the_synced_revision_is_the_release() -> None:
    async with SimWorld(speed=60, gitops="github", settings=settings(True)) as world:
        view = await modal_after_start(world)
        assert view["callback_id"] == "tier3_confirm"
        assert world.release_sha[:12] in json.dumps(view["blocks"])


async def test_without_either_the_release_commit_is_unknown() -> None:
    async with SimWorld(speed=60, gitops="github", settings=settings(False)) as world:
        view = await modal_after_start(world)
        shown = json.dumps(view["blocks"])
        assert view.get("callback_id") != "tier3_confirm"
        assert "release's Git commit is unknown" in shown and "ci.example.com/release-sha" in shown
        assert world.git.pushes() == []
