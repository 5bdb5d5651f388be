"""Fault 6 (issue 15): 200 concurrent clicks on one Abort, from 20 users, over 2 replicas.

Two real `rollbot serve` replicas (a leader and a standby, both Ready and both serving
Slack) on one real PostgreSQL. The owners group of payment-router has 20 members in the
Slack sim (the on-call engineer and 19 more responders: the policy lets any member do a
Tier 1 action, so every click is allowed). Once the card shows Abort, 200 signed clicks
on it are sent at once (`asyncio.gather`), each user clicking 10 times, every second
click to the other replica.

Checked against the sims' and the database's own records:
- every click is acknowledged 200 (`click_ack_p50_ms`, `click_ack_p99_ms`);
- exactly one PATCH of `status.abort` reached the Kubernetes sim (`abort_patches`);
- every click's response_url got exactly one answer: one ":white_check_mark: Aborted …"
  for the winner of the idempotency claim, and 199 answers saying who did it and when
  (`already_done_answers`): "Already aborted by <@…> at …" once the winner has finished, or
  "<@…> is already running abort on … (since …)" while it runs; each answer ephemeral
  (seen by the clicker alone), none replacing the card;
- the audit log holds one succeeded abort and 199 duplicates naming the winner;
- one card in the channel, and one abort line in its thread.

Figures: `concurrent_clicks`, `abort_patches`, `already_done_answers`, `click_ack_p50_ms`,
`click_ack_p99_ms`, `answered_s` (from the first click sent to the last answer).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from bot.core.model import AuditEntry
from bot.sim.harness import CHANNEL_ID, ONCALL, USERGROUP, SimWorld
from bot.sim.slack import SignedRequest, SlackSender
from bot.store import SqlStore, open_store
from tests.e2e.serving import Replica, stopping
from tests.helpers import eventually

pytestmark = [pytest.mark.timeout(120), pytest.mark.peer("postgres")]

CLICKS = 200
USERS = 20
TARGET = "payments/payment-router"
ROLLOUT_PATH = "/namespaces/payments/rollouts/payment-router"
# The 19 responders besides the on-call engineer, all in the owners group.
RESPONDERS = [(f"U0RESP{i:03d}", f"responder-{i:02d}") for i in range(1, USERS)]


@pytest.fixture
async def store(postgres_db_url: str) -> AsyncIterator[SqlStore]:
    """The replicas' database, read as the test's own evidence."""
    opened = await open_store(postgres_db_url)
    try:
        yield opened
    finally:
        await opened.close()


def _owners(world: SimWorld) -> list[tuple[str, str]]:
    """Twenty members in the services' owners group, as a team grows in Slack."""
    for user_id, name in RESPONDERS:
        world.slack.add_user(user_id, name, email=f"{name}@example.com")
    users = [ONCALL, *RESPONDERS]
    world.slack.set_usergroup_members(USERGROUP, [u for u, _ in users])
    return users


def _response_rid(request: SignedRequest) -> str:
    """The id of the response_url the sim minted for a click (the last part of its URL)."""
    payload = json.loads(parse_qs(request.body)["payload"][0])
    return str(payload["response_url"]).rsplit("/", 1)[1]


async def _send_all(requests: list[SignedRequest]) -> list[tuple[httpx.Response, float]]:
    """Post every click at once over one client (a connection each, as Slack's many
    senders would), each with the seconds until its answer (the ack)."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(request: SignedRequest) -> tuple[httpx.Response, float]:
            started = time.perf_counter()
            response = await client.post(
                request.sender.events_url, content=request.body.encode(), headers=request.headers
            )
            return response, time.perf_counter() - started

        return await asyncio.gather(*(one(r) for r in requests))


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def test_200_concurrent_clicks_on_one_abort(
    tmp_path: Path, postgres_db_url: str, store: SqlStore
) -> None:
    async with SimWorld(speed=600, start_bot=False, database_url=postgres_db_url) as world:
        users = _owners(world)
        replicas: list[Replica] = []
        with stopping(replicas):
            a = await Replica.start(world, "a", tmp_path)
            replicas.append(a)
            await a.wait_leading()
            b = await Replica.start(world, "b", tmp_path)
            replicas.append(b)
            await b.wait_status("/readyz", 200)  # the standby is Ready: it serves Slack
            world.attach_bot(a.url)
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
                timeout=60,
                what="the card with Abort",
            )
            button = world.button(card, "rollout_abort")
            assert button is not None
            senders = [
                SlackSender(
                    f"{r.url}/slack/events", world.secrets.slack_signing_secret, sim=world.slack
                )
                for r in (a, b)
            ]
            # Click i: user (i // 2) % 20, replica i % 2 — each user clicks 10 times,
            # five times on each replica.
            clicks = [
                senders[i % 2].click(
                    users[(i // 2) % USERS][0],
                    "rollout_abort",
                    button["value"],
                    message=card,
                    channel_id=CHANNEL_ID,
                    block_id=button["block_id"],
                    user_name=users[(i // 2) % USERS][1],
                )
                for i in range(CLICKS)
            ]
            rids = [_response_rid(c) for c in clicks]
            assert len(set(rids)) == CLICKS

            sent = time.monotonic()
            acks = await _send_all(clicks)
            assert [r.status_code for r, _ in acks] == [200] * CLICKS, [
                (r.status_code, r.text[:200]) for r, _ in acks if r.status_code != 200
            ]

            def answers() -> dict[str, list[str]]:
                by_rid: dict[str, list[str]] = {rid: [] for rid in rids}
                for response in world.slack.responses:
                    if response.id in by_rid:
                        by_rid[response.id].append(str(response.body.get("text") or ""))
                return by_rid

            await eventually(
                lambda: all(answers().values()),
                timeout=40,
                interval=0.05,
                what=lambda: (
                    f"an answer to every click ({sum(map(bool, answers().values()))} of "
                    f"{CLICKS})\n{a.tail()}\n{b.tail()}"
                ),
            )
            answered = time.monotonic() - sent

            # Every click's job has answered; its audit entry was written before.
            async def audited() -> list[AuditEntry]:
                entries = [
                    r.entry
                    for r in await store.audit_entries()
                    if r.entry.action == "abort" and r.entry.target == TARGET
                ]
                return entries if len(entries) >= CLICKS else []

            entries: list[AuditEntry] = await eventually(
                audited, timeout=10, what="200 abort audit entries"
            )
            winner = next(e for e in entries if e.result == "succeeded").actor.split(":")[1]
            line = f"Aborted by <@{winner}>: all traffic back on stable revision"
            await world.wait_for(
                lambda: any(
                    line in (m.get("text") or "")
                    for m in world.slack.thread(CHANNEL_ID, card["ts"])
                ),
                timeout=20,
                what="the abort's line in the card's thread",
            )

            texts = answers()
            once = [t for t in texts.values() if len(t) == 1]
            flat = [t[0] for t in once]
            won = [t for t in flat if t.startswith(":white_check_mark: Aborted `")]
            done = f"Already aborted by <@{winner}> at "
            running = f"<@{winner}> is already running abort on `{TARGET}` (since "
            losers = [
                t
                for t in flat
                if t.startswith(":information_source: ") and (done in t or running in t)
            ]
            patches = world.kube.requests_matching("PATCH", ROLLOUT_PATH)
            abort_patches = [
                r for r in patches if r.body == {"status": {"abort": True}} and r.status == 200
            ]
            seconds = sorted(s for _, s in acks)
            print(f"FIGURE concurrent_clicks={CLICKS}")
            print(f"FIGURE abort_patches={len(abort_patches)}")
            print(f"FIGURE already_done_answers={len(losers)}")
            print(f"FIGURE click_ack_p50_ms={_percentile(seconds, 50) * 1000:.0f}")
            print(f"FIGURE click_ack_p99_ms={_percentile(seconds, 99) * 1000:.0f}")
            print(f"FIGURE answered_s={answered:.1f}")
            print(
                "already done / still running when told: "
                f"{sum(done in t for t in losers)} / {sum(running in t for t in losers)}"
            )

            assert len(patches) == 1 and len(abort_patches) == 1, patches
            assert len(once) == CLICKS, {r: t for r, t in texts.items() if len(t) != 1}
            assert len(won) == 1, won
            clicker = {rid: users[(i // 2) % USERS][0] for i, rid in enumerate(rids)}
            assert [clicker[r] for r, t in texts.items() if t == won] == [winner]
            assert len(losers) == CLICKS - 1, Counter(
                t for t in flat if t not in won and t not in losers
            )
            # Each answer is ephemeral, to the clicker alone, through the response_url;
            # none replaced the card, none went through chat.postEphemeral.
            bodies = [r.body for r in world.slack.responses if r.id in texts]
            assert all(
                b.get("response_type") == "ephemeral" and not b.get("replace_original")
                for b in bodies
            ), bodies
            assert not world.slack.calls_to("chat.postEphemeral")
            results = Counter(e.result for e in entries)
            assert results == {"succeeded": 1, "duplicate": CLICKS - 1}, results
            assert all(e.detail["winner"] == winner for e in entries if e.result == "duplicate")
            cards = [
                m
                for m in world.slack.messages(CHANNEL_ID)
                if m.get("thread_ts") in (None, m.get("ts"))
            ]
            assert [m["ts"] for m in cards] == [card["ts"]]
            lines = [
                m
                for m in world.slack.thread(CHANNEL_ID, card["ts"])
                if "Aborted by <@" in (m.get("text") or "")
            ]
            assert len(lines) == 1, lines
