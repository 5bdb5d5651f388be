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
Jira refusing a field exits 1 naming it; a start on a revision the cluster aborted exits 2
saying so, and files and posts nothing.

And the release card across restarts (its ts and the release's phase are in the database):
- killed with SIGKILL while the release rolls out, the Rollout aborted while rollbot is
  down: the restarted process updates the same card (same ts) to "Aborted", posts none;
- a phase saved by a process that died before its card update (the database says
  reverted, the card still says fully rolled out): the leader's reconcile shows it, once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import ReleasePhase
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


async def test_cli_start_on_an_aborted_revision_exits_2_and_files_nothing() -> None:
    async with SimWorld(speed=60, start_bot=False, jira=True) as world:
        abort = {"status": {"abort": True}}
        world.kube.patch("rollouts", "payments", "payment-router", abort, subresource="status")
        done = await asyncio.to_thread(_cli, world, "start", "payment-router", "1.13.0")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "is revision 42 of the Rollout `payments/payment-router`, and the cluster " in (
            done.stderr
        )
        assert "Nothing was recorded and no cleanup tickets were filed" in done.stderr
        assert world.jira.created_count == 0
        assert not [m for m in world.slack.messages(CHANNEL_ID) if "1.13.0" in (m["text"] or "")]


async def test_cli_exits_1_naming_the_field_jira_refused() -> None:
    async with SimWorld(
        speed=60, start_bot=False, jira={"projects": {"PAY": {"required": ["priority"]}}}
    ) as world:
        done = await asyncio.to_thread(_cli, world, "start", "payment-router", "1.13.0")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Field 'priority' is required" in done.stdout
        assert world.jira.created_count == 0


# ── the release card across restarts ───────────────────────────────────────────────────

RID = "payment-router@1.13.0"


def _release_card(world: SimWorld) -> dict[str, Any] | None:
    """The release card of 1.13.0 in the channel (a top-level message), the only one."""
    cards = [
        m
        for m in world.slack.messages(CHANNEL_ID)
        if m.get("thread_ts") in (None, m["ts"]) and f"`{RID}`" in json.dumps(m.get("blocks"))
    ]
    assert len(cards) <= 1, "a second release card was posted"
    return cards[0] if cards else None


def _card_says(world: SimWorld, emoji: str, words: str) -> dict[str, Any] | None:
    card = _release_card(world)
    if card is None:
        return None
    header = card["blocks"][0]["text"]["text"]
    phase = card["blocks"][1]["fields"][0]["text"]
    return card if header.startswith(f"{emoji} ") and words in phase else None


def _updates(world: SimWorld, ts: str) -> list[Any]:
    return [c for c in world.slack.calls_to("chat.update") if c.body.get("ts") == ts]


async def test_the_card_is_updated_in_place_after_kill_9(tmp_path: Path) -> None:
    async with SimWorld(
        speed=600, analysis_at_25="Inconclusive", start_bot=False, jira=True, settings=FAST
    ) as world:
        log = tmp_path / "serve.log"
        first = await start(world, log)
        try:
            world.attach_bot(first.url)
            response = await world.sender.slash_command(
                ONCALL[0], ONCALL[1], "start payment-router 1.13.0", command="/release"
            ).send()
            assert response.status_code == 200
            card = await world.wait_for(
                lambda: _card_says(world, "🔄", "Rolling out"), timeout=40, what="rolling out"
            )
        finally:
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=10)
        ts = card["ts"]

        # While rollbot is down, the Rollout is aborted (by hand, with kubectl).
        abort = {"status": {"abort": True}}
        world.kube.patch("rollouts", "payments", "payment-router", abort, subresource="status")
        second = await start(world, log)
        try:
            world.attach_bot(second.url)
            aborted = await world.wait_for(
                lambda: _card_says(world, "🛑", "Aborted"), timeout=40, what="the card aborted"
            )
            assert aborted["ts"] == ts  # the same message, updated in place
            assert "clocks stopped" in aborted["text"]
            assert all(c.body["channel"] == CHANNEL_ID for c in _updates(world, ts))
            # Killed before or after filing: the tickets are there once either way.
            await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
            assert _release_card(world) is not None
        finally:
            second.stop()


async def test_a_phase_saved_but_not_shown_is_shown_by_the_reconcile() -> None:
    # In process: the database is the truth the next leader reconciles from.
    async with SimWorld(speed=600, analysis_at_25="Successful", jira=True) as world:
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "start payment-router 1.13.0", command="/release"
        ).send()
        assert response.status_code == 200
        card = await world.wait_for(
            lambda: _card_says(world, "✅", "Fully rolled out"), timeout=40, what="full rollout"
        )
        ts = card["ts"]
        store = world.rollbot.store
        scheduler = world.rollbot.scheduler
        assert scheduler is not None
        await world.wait_for(lambda: scheduler.leader, what="the scheduler lease")
        # A rollbot that saved "reverted" and died before its chat.update.
        release = await store.get_release(RID)
        assert release is not None and release.thread_ts == ts
        await store.save_release(
            replace(release, phase=ReleasePhase.REVERTED, stopped_at=release.full_rollout_at)
        )
        before = len(_updates(world, ts))
        await world.rollbot.releases.reconcile()
        assert _card_says(world, "↩️", "Reverted to 1.12.4")
        assert len(_updates(world, ts)) == before + 1
        await world.rollbot.releases.reconcile()  # again: the card shows it, nothing to send
        assert len(_updates(world, ts)) == before + 1
        assert _release_card(world) is not None
