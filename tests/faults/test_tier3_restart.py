"""Tier 3 across a restart (issue 18): `kill -9` of the leader between the push of the
revert's branch and the opening of its pull request.

Two real `rollbot serve` processes share one PostgreSQL database: A leads, B stands by
(as tests/faults/test_kill9.py). GitHub answers 503 to everything once the requester
confirms: A pushes the branch (the Git host is up), then cannot open the pull request
and retries with backoff. A is killed there; GitHub comes back; B takes the lease over,
queues the step of every revert under way (`GitOpsReverts.resume`) and finishes it.

Figures: `pushes` (receive-pack requests the Git host served: 1), `pulls` (pull requests
on GitHub: 1), `duplicates` (0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sim import world as sim_world
from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from tests.e2e.serving import Replica, stopping
from tests.e2e.tier3 import card_with_start, prepared_modal
from tests.faults.test_kill9 import LEASE, _kill_and_take_over, _leader_and_standby

pytestmark = [pytest.mark.timeout(150), pytest.mark.peer("postgres")]


async def test_kill_9_between_the_push_and_the_pull_request(
    tmp_path: Path, postgres_db_url: str
) -> None:
    settings = {"server": {"leader_lease_seconds": LEASE}}
    async with SimWorld(
        speed=60,
        start_bot=False,
        database_url=postgres_db_url,
        settings=settings,
        gitops="github",
    ) as world:
        github, git = world.code_host, world.git
        project = sim_world.GITOPS_PROJECT
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            world.attach_bot(a.url)
            card = await card_with_start(world, what="the card with Start, posted by A")
            assert (await world.click(card, "tier3_start")).status_code == 200
            view = await prepared_modal(world)
            github.fail_next(100_000, 503)
            sent = world.sender.view_submission(ONCALL[0], view, {}, user_name=ONCALL[1])
            assert (await sent.send()).status_code == 200
            # A is between the two halves: the branch pushed, GitHub refusing its calls.
            await world.wait_for(
                lambda: len(git.pushes()) == 1 and any(r.status == 503 for r in github.requests),
                timeout=30,
                what="A's push, then GitHub refusing it",
            )
            assert github.pulls(project) == []

            await _kill_and_take_over(a, b)
            github.clear_faults()
            world.attach_bot(b.url)
            await world.wait_for(
                lambda: "waiting for a second person" in json.dumps(world.card() or {}),
                timeout=60,
                what="B opening the pull request and the card saying so",
            )
            pulls = github.pulls(project)
            pushes = len(git.pushes())
            print(f"FIGURE pushes={pushes} pulls={len(pulls)}")
            assert pushes == 1 and len(pulls) == 1
            thread = [str(m.get("text") or "") for m in world.slack.thread(CHANNEL_ID, card["ts"])]
            opened = [t for t in thread if "is open" in t and "pull request #" in t]
            # Beyond one each: pushes of the branch, pull requests, "is open" lines.
            duplicates = (pushes - 1) + (len(pulls) - 1) + (len(opened) - 1)
            print(f"FIGURE duplicates={duplicates}")
            assert len(opened) == 1, thread
