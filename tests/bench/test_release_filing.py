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

What remains of the overhead, per round, from the sims' records (arrival times):

    command sent → acked                  signature, authorisation, the work queued
    acked → first Jira call               the release row, its audit entry and ticket
                                          records, the Slack lookups, the release's post
    first Jira call → last create sent    the label search, the creates but the last
    last create sent → "filed" posted     the last create's round trip, the ticket records
                                          and audit entries, the thread message

Records `release_filing.p50_ms` and `.max_ms` (the bare creates as the baseline),
`.overhead_ms` and the three stages' medians (`release_filing.stage.*_ms`); draws them beside
the baseline (docs/bench/release_filing.png).
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
from tests.bench import charts
from tests.bench.results import record

ROUNDS = 12
STAGES = ("ack", "before_jira", "jira", "after_jira")


def ms(seconds: float) -> float:
    return seconds * 1000


async def rollbot_round(world: SimWorld, n: int) -> tuple[float, dict[str, float]]:
    """The round's time (command sent → "Cleanup tickets filed" seen) and its stages."""
    version = f"2.0.{n}"
    before = world.jira.created_count
    sent_at = time.time()
    t0 = time.perf_counter()
    response = await world.sender.slash_command(
        ONCALL[0], ONCALL[1], f"start payment-router {version}", command="/release"
    ).send()
    acked_at = time.time()
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
    return elapsed, stages(world, sent_at, acked_at)


def stages(world: SimWorld, sent_at: float, acked_at: float) -> dict[str, float]:
    """Where the round's time went, from the arrival times the Jira and Slack sims
    recorded (see the module): seconds per stage."""
    jira = [r for r in world.jira.requests if r.at >= sent_at]
    creates = [r.at for r in jira if r.method == "POST" and r.path.endswith("/issue")]
    filed_at = min(
        c.at
        for c in world.slack.calls_to("chat.postMessage")
        if c.at >= sent_at and "Cleanup tickets filed" in str((c.body or {}).get("text", ""))
    )
    first_jira = min(r.at for r in jira)
    return {
        "ack": acked_at - sent_at,
        "before_jira": first_jira - acked_at,
        "jira": max(creates) - first_jira,
        "after_jira": filed_at - max(creates),
    }


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
        parts: list[dict[str, float]] = []
        for n in range(ROUNDS):
            if n % 2 == 0:
                direct.append(await direct_round(tickets, n))
            elapsed, where = await rollbot_round(world, n)
            rollbot.append(elapsed)
            parts.append(where)
            if n % 2:
                direct.append(await direct_round(tickets, n))
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
    stage = {k: statistics.median(p[k] for p in parts) for k in STAGES}
    print(
        "  where rollbot's time goes (medians): "
        f"command → acked {ms(stage['ack']):.0f} ms · "
        f"acked → first Jira call {ms(stage['before_jira']):.0f} ms · "
        f"Jira calls up to the last create {ms(stage['jira']):.0f} ms · "
        f"last create → 'filed' posted {ms(stage['after_jira']):.0f} ms"
    )

    record("release_filing.p50_ms", round(ms(r50), 1), "ms", baseline=round(ms(d50), 1))
    record(
        "release_filing.max_ms",
        round(ms(max(rollbot)), 1),
        "ms",
        baseline=round(ms(max(direct)), 1),
    )
    record("release_filing.overhead_ms", round(ms(overhead), 1), "ms")
    for k in STAGES:
        record(f"release_filing.stage.{k}_ms", round(ms(stage[k]), 1), "ms")
    charts.bars(
        "release_filing",
        f"/release start → tickets filed, medians of {ROUNDS}",
        {
            "rollbot: command → acked": round(ms(stage["ack"])),
            "rollbot: acked → first Jira call": round(ms(stage["before_jira"])),
            "rollbot: Jira calls to the last create": round(ms(stage["jira"])),
            "rollbot: last create → 'filed' posted": round(ms(stage["after_jira"])),
            "rollbot: whole (p50)": round(ms(r50)),
            "baseline: 3 creates via the jira client": round(ms(d50)),
        },
        "ms",
    )
