"""Benchmark: `/release start` → cleanup tickets filed, against filing the same tickets
straight through the Jira client.

rollbot runs in a SimWorld with the Jira sim (REST v2 over loopback HTTP). ROUNDS releases
(`payment-router 2.0.N`) are started by signed `/release start` commands; each is timed
from sending the command to the thread message "Cleanup tickets filed" (rollbot has then
recorded the release, posted its thread, searched Jira for each ticket's label, created
the three tickets, recorded them, and read the cluster for the checklist).

The baseline, interleaved round by round in the same run: the same three tickets created
directly with `bot.adapters.jira.JiraTickets` (the real `jira` client, one create each, no
search, no records, no Slack) against the same sim. Prints p50 / max of both, the ratio
and rollbot's overhead (median of per-round differences). Correctness is asserted (three
tickets per release, each once); speed is only printed. Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import date

import pytest

from bot.adapters.jira import JiraTickets
from bot.core.model import TicketSpec
from bot.sim.harness import CHANNEL_ID, LEAD_EMAIL, ONCALL, SimWorld

ROUNDS = 12


def ms(seconds: float) -> float:
    return seconds * 1000


async def rollbot_round(world: SimWorld, n: int) -> float:
    version = f"2.0.{n}"
    before = world.jira.created_count
    t0 = time.perf_counter()
    response = await world.sender.slash_command(
        ONCALL[0], ONCALL[1], f"start payment-router {version}", command="/release"
    ).send()
    assert response.status_code == 200

    def filed() -> bool:
        return any(
            "Cleanup tickets filed" in (m.get("text") or "")
            and m.get("thread_ts")
            and any(version in (p.get("text") or "") for p in _parent(world, m))
            for m in world.slack.messages(CHANNEL_ID)
        )

    await world.wait_for(filed, timeout=30, what=f"tickets of {version} filed")
    elapsed = time.perf_counter() - t0
    assert world.jira.created_count == before + 3
    return elapsed


def _parent(world: SimWorld, message: dict) -> list[dict]:
    ts = message.get("thread_ts")
    parent = world.slack.message(CHANNEL_ID, ts) if ts else None
    return [parent] if parent else []


async def direct_round(tickets: JiraTickets, n: int) -> float:
    t0 = time.perf_counter()
    for kind in ("remove-release-flag", "contract-migration", "delete-legacy-code"):
        await tickets.create(
            TicketSpec(
                project="PAY",
                summary=f"baseline {kind} {n}",
                description="baseline",
                labels=("bench", f"bench-{n}-{kind}"),
                due=date(2027, 1, 1),
                assignee=LEAD_EMAIL,
            )
        )
    return time.perf_counter() - t0


@pytest.mark.timeout(600)
async def test_release_filing_vs_direct_jira() -> None:
    async with SimWorld(speed=60, jira=True, slack_rate_limits=False) as world:
        tickets = JiraTickets(
            url=world.jira.url, email=world.jira.email, api_token=world.jira.api_token
        )
        await tickets.check()  # warm: serverInfo, deployment type
        rollbot: list[float] = []
        direct: list[float] = []
        for n in range(ROUNDS):
            if n % 2:
                rollbot.append(await rollbot_round(world, n))
                direct.append(await direct_round(tickets, n))
            else:
                direct.append(await direct_round(tickets, n))
                rollbot.append(await rollbot_round(world, n))
            await asyncio.sleep(0.05)
        tickets.close()

    r50, d50 = statistics.median(rollbot), statistics.median(direct)
    overhead = statistics.median(r - d for r, d in zip(rollbot, direct, strict=True))
    print()
    print(f"release filing, {ROUNDS} releases × 3 tickets (Jira sim on loopback)")
    print(
        f"  rollbot  /release start → tickets filed: p50 {ms(r50):7.1f} ms  "
        f"max {ms(max(rollbot)):7.1f} ms"
    )
    print(
        f"  baseline 3 creates via the jira client:  p50 {ms(d50):7.1f} ms  "
        f"max {ms(max(direct)):7.1f} ms"
    )
    print(
        f"  ratio rollbot / baseline (p50): {r50 / d50:.2f}×   "
        f"rollbot overhead (median): {ms(overhead):.1f} ms"
    )
