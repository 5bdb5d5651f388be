"""Exactly-once filing across `kill -9`, and `rollbot release start` from a CI pipeline.

rollbot runs as a real `rollbot serve` process (its own interpreter, its SQLite database,
its APScheduler) against the sims; the Jira sim holds the second create so the process can
be killed with SIGKILL exactly between the first and the second ticket:

- killed before the second create reached Jira: after the restart the record says
  `creating`, a search finds nothing, and once `jira.search_settle_seconds` has passed the
  ticket is filed; three tickets, once each;
- killed after Jira created the second ticket but before its answer arrived (the key was
  never recorded), with Jira's search lagging behind: the restarted process searches by the
  ticket's label, waits out the lag instead of creating a duplicate, adopts the ticket, and
  files the third; three tickets, once each.

And the CLI: `rollbot release start payment-router 1.13.0` files the tickets and prints
them; run again it says "already started" and files nothing (a CI re-run is harmless);
Jira refusing a field exits 1 naming it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from tests.e2e.serving import ROOT, start

pytestmark = pytest.mark.timeout(150)

FAST = {
    "releases": {"lease_ttl_seconds": 1.5, "reconcile_seconds": 0.3, "retry_seconds": 0.3},
    # The killed process's leader lease lingers this long before the new one may act.
    "server": {"leader_lease_seconds": 1.5},
    "jira": {"search_settle_seconds": 2.0},
}


@pytest.mark.parametrize("answered", [False, True], ids=["before-jira", "after-jira-created"])
async def test_kill_9_between_first_and_second_ticket(answered: bool, tmp_path: Path) -> None:
    jira = {"search_lag": 1.0} if answered else {}
    async with SimWorld(speed=60, start_bot=False, jira=jira, settings=FAST) as world:
        log = tmp_path / "serve.log"
        first = await start(world, log)
        try:
            world.attach_bot(first.url)
            world.jira.hold_creates(after=1, answered=answered)
            response = await world.sender.slash_command(
                ONCALL[0], ONCALL[1], "start payment-router 1.13.0", command="/release"
            ).send()
            assert response.status_code == 200
            await world.wait_for(
                lambda: world.jira.held_creates == 1, timeout=30, what="the second create held"
            )
            assert world.jira.created_count == (2 if answered else 1)
        finally:
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
        # The held create ends once the sim sees its caller's connection gone (without
        # creating, when it was held before creating): then nothing is left to release.
        await world.wait_for(
            lambda: world.jira.held_creates == 0, timeout=10, what="the held create dropped"
        )
        world.jira.release_creates()
        assert world.jira.created_count == (2 if answered else 1)  # the dead never reached it

        second = await start(world, log)  # on another port: Slack is told the new URL
        try:
            world.attach_bot(second.url)
            await world.wait_for(
                lambda: world.jira.created_count == 3, timeout=40, what="all three tickets"
            )
            # "Cleanup tickets filed" is said once every ticket record is `filed`; a later
            # filing run finds nothing left to file, so a duplicate would exist by then.
            await world.wait_for(
                lambda: any(
                    "Cleanup tickets filed" in (m.get("text") or "")
                    for m in world.slack.messages(CHANNEL_ID)
                ),
                timeout=20,
                what="the thread saying the tickets are filed",
            )
            assert world.jira.created_count == 3
            kinds = sorted(
                label
                for issue in world.jira.issues.values()
                for label in issue["fields"]["labels"]
                if label.startswith("rollbot-payment-router-1.13.0-")
            )
            assert kinds == sorted(
                f"rollbot-payment-router-1.13.0-{k}"
                for k in ("remove-release-flag", "contract-migration", "delete-legacy-code")
            )
        finally:
            second.stop()


def _cli(world: SimWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "release", *args, "--config", str(world.config_path)],
        cwd=ROOT,
        env={**os.environ, **world.bot_env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def test_cli_release_start_from_ci_is_idempotent() -> None:
    async with SimWorld(speed=60, start_bot=False, jira=True) as world:
        done = await asyncio.to_thread(_cli, world, "start", "payment-router", "1.13.0")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "payment-router@1.13.0 started." in done.stdout
        assert "PAY-1" in done.stdout and "provisional" in done.stdout
        assert world.jira.created_count == 3
        threads = [m for m in world.slack.messages(CHANNEL_ID) if "1.13.0" in (m["text"] or "")]
        assert threads, "the release thread is posted from CI too"

        again = await asyncio.to_thread(_cli, world, "start", "payment-router", "1.13.0")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already started" in again.stdout and "nothing done" in again.stdout
        assert world.jira.created_count == 3

        status = await asyncio.to_thread(_cli, world, "status", "payment-router")
        assert status.returncode == 0 and "PAY-3" in status.stdout

        unknown = await asyncio.to_thread(_cli, world, "start", "checkout", "2.0.0")
        assert unknown.returncode == 2
        assert "Known services: `payment-router`" in unknown.stderr


async def test_cli_exits_1_naming_the_field_jira_refused() -> None:
    async with SimWorld(
        speed=60, start_bot=False, jira={"projects": {"PAY": {"required": ["priority"]}}}
    ) as world:
        done = await asyncio.to_thread(_cli, world, "start", "payment-router", "1.13.0")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Field 'priority' is required" in done.stdout
        assert world.jira.created_count == 0
