"""Leader and standby between two real `rollbot serve` processes sharing one SQLite database.

Both processes read the same config, hence the same database file, and compete for the
lease `leader` (bot/runtime/leader.py). Both serve every request; only the holder runs the
loops:

- the first process leads (`/readyz` 200 and `"leader": true`, `rollbot_leader 1.0`); the
  second is a standby, Ready too (`/readyz` 200, `"leader": false`, `rollbot_leader 0.0`):
  a signed slash command sent to it is answered, its reply reaches the response_url; both
  could watch the same cluster but only the leader does, and posts the rollout card (one
  card, not two);
- `kill -9` of the leader: the standby takes the lease within about the TTL, and an Abort
  clicked on the dead leader's card through it aborts the Rollout and updates that card in
  place (no second card);
- SIGTERM of the leader: it shuts down gracefully (uvicorn re-raises the signal once
  done, so the status is 0 or -15) and releases the lease, so the standby takes over at
  its next try (a third of the TTL), not after the TTL;
- a leader whose lease is taken by someone else (written straight into the database)
  stops and exits 1, saying it lost the lease;
- a replica that takes over keeps the lease while it starts leading, however long that
  takes (its start replays the webhooks a standby stored, here one whose card Slack posts
  only after two leases): the third replica does not take the lease meanwhile, and the
  new leader does not lose it."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.sim import alerts as sim_alerts
from bot.sim.harness import ALERTMANAGER_TOKEN, CHANNEL_ID, ONCALL, SimWorld
from tests.e2e.serving import Replica, leading, stopping
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

LEASE = 1.5  # server.leader_lease_seconds for the kill -9 and lease-taken tests


def _settings(lease: float) -> dict[str, Any]:
    return {"server": {"leader_lease_seconds": lease}}


async def _leader_and_standby(
    world: SimWorld, tmp_path: Path, replicas: list[Replica]
) -> tuple[Replica, Replica]:
    """A started first and ready (it leads), then B started and serving (standby)."""
    a = await Replica.start(world, "a", tmp_path)
    replicas.append(a)
    await a.wait_leading()
    b = await Replica.start(world, "b", tmp_path)
    replicas.append(b)
    return a, b


def _top_level(world: SimWorld) -> list[dict[str, Any]]:
    return [
        m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m.get("ts"))
    ]


async def test_one_leader_one_standby_and_failover_on_kill_9(tmp_path: Path) -> None:
    async with SimWorld(speed=600, start_bot=False, settings=_settings(LEASE)) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)

            # B is a standby: Ready (it serves), not leading.
            ready_b = await b.wait_status("/readyz", 200, timeout=5)
            assert ready_b.json() == {"ready": True, "problems": [], "leader": False}
            assert (await a.get("/readyz")).json()["leader"] is True
            assert await a.leader_gauge() == 1.0
            assert await b.leader_gauge() == 0.0

            # A signed slash command to the standby: answered there, its reply reaches
            # the response_url.
            for replica in (b, a):
                before = len(world.slack.responses)
                world.attach_bot(replica.url)
                answered = await world.sender.slash_command(
                    ONCALL[0], ONCALL[1], "payment-router"
                ).send()
                assert answered.status_code == 200, answered.text
                await world.wait_for(
                    lambda before=before: len(world.slack.responses) > before,
                    timeout=20,
                    what=f"{replica.name}'s status reply",
                )
            world.attach_bot(a.url)

            # Both watch the same cluster; only the leader posts the card.
            card = await world.wait_for(
                lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
                timeout=60,
                what="the card with Abort",
            )
            # B could only post a card from its own watch, and a standby does not watch: it
            # has seen no watch event (the leader's work starts with the lease).
            assert await b.metric("rollbot_watch_events_total{") == []
            assert await a.metric("rollbot_watch_events_total{") != []
            assert await b.leader_gauge() == 0.0
            assert len(_top_level(world)) == 1, _top_level(world)

            # kill -9 the leader: B takes over within about the TTL.
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            killed = time.monotonic()
            await b.wait_leading(timeout=15)
            takeover = time.monotonic() - killed
            print(f"takeover after kill -9: {takeover:.2f} s (lease {LEASE} s)")
            assert await b.leader_gauge() == 1.0

            # Abort on the dead leader's card, through the new leader: the Rollout is
            # aborted and that card is updated in place.
            world.attach_bot(b.url)
            clicked = await world.click(card, "rollout_abort")
            assert clicked.status_code == 200, clicked.text
            await world.wait_for(
                lambda: (
                    (world.kube.get("rollouts", "payments", "payment-router") or {})
                    .get("status", {})
                    .get("abort")
                    is True
                ),
                timeout=20,
                what="the Rollout aborted",
            )
            await world.wait_for(
                lambda: (
                    (m := world.slack.message(CHANNEL_ID, card["ts"])) is not None
                    and "Aborted by" in json.dumps(m.get("blocks"))
                ),
                timeout=20,
                what="the card updated with 'Aborted by'",
            )
            # B found A's card in the shared database and answered under it: the abort's one
            # line is in the card's thread (the aborted Rollout, seen by B's watch, is that
            # line's news and not told again: issue 14).
            await world.wait_for(
                lambda: any(
                    "Aborted by <@U0ONCALL>: all traffic back on" in (m.get("text") or "")
                    for m in world.slack.thread(CHANNEL_ID, card["ts"])
                ),
                timeout=20,
                what="the abort's line in the card's thread",
            )
            # B's watch has seen the aborted Rollout (the controller's last state): that state
            # is written and B's watch events have settled since, without a card of its own.
            await world.wait_for(
                lambda: (
                    (world.kube.get("rollouts", "payments", "payment-router") or {})
                    .get("status", {})
                    .get("phase")
                    == "Degraded"
                ),
                timeout=20,
                what="the controller's last state of the aborted Rollout",
            )

            async def settled() -> list[str] | None:
                seen = await b.metric("rollbot_watch_events_total{")
                await asyncio.sleep(0.5)
                return (
                    seen if seen and seen == await b.metric("rollbot_watch_events_total{") else None
                )

            await eventually(settled, timeout=20, what="B's watch settled on the aborted Rollout")
            tops = _top_level(world)
            assert [m["ts"] for m in tops] == [card["ts"]], tops  # no second card
            assert "Aborted by" in json.dumps(tops[0].get("blocks"))


async def test_graceful_stop_hands_over_quickly(tmp_path: Path) -> None:
    # A long lease, so that a release that did not happen (B waiting out the TTL) cannot
    # pass for a quick hand-over: without it B would wait at least 2/3 of the TTL (10 s).
    lease = 15.0
    async with SimWorld(speed=600, start_bot=False, settings=_settings(lease)) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            await b.wait_status("/readyz", 200, timeout=5)  # a standby is Ready
            assert await b.leader_gauge() == 0.0

            signalled = time.monotonic()
            a.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(a.proc.wait, 30)
            exited = time.monotonic()
            # uvicorn (0.54) re-raises the SIGTERM it caught once the shutdown is complete,
            # so a graceful stop ends "killed by SIGTERM" (143 in a shell), not 0; graceful
            # either way: the lifespan ran to its end (and released the lease).
            assert code in (0, -signal.SIGTERM), a.tail()
            assert "Application shutdown complete" in a.log.read_text(), a.tail()
            await b.wait_leading(timeout=2 * lease)
            handover = time.monotonic() - exited
            print(
                f"takeover after SIGTERM: {handover:.2f} s after the exit, "
                f"{time.monotonic() - signalled:.2f} s after the signal (lease {lease} s)"
            )
            # B's next try after the release: at most a third of the TTL, plus slack.
            assert handover <= lease / 3 + 2.0, handover
            assert handover <= 2 * (lease / 3) + 2.0, handover


def _database(world: SimWorld) -> Path:
    url = json.loads(world.config_path.read_text())["database"]["url"]
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


async def test_a_leader_whose_lease_is_taken_exits_1(tmp_path: Path) -> None:
    async with SimWorld(speed=600, start_bot=False, settings=_settings(LEASE)) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a = await Replica.start(world, "a", tmp_path)
            replicas.append(a)
            await a.wait_leading()

            db = sqlite3.connect(_database(world), timeout=10)
            try:
                (holder, expires) = db.execute(
                    "SELECT holder, expires_at FROM leases WHERE name = 'leader'"
                ).fetchone()
                assert f":{a.pid}:" in holder
                assert len(expires) == len("2024-01-01 00:00:00.000000"), expires  # naive UTC
                with db:
                    db.execute(
                        "UPDATE leases SET holder = 'someone-else', "
                        "expires_at = '2999-01-01 00:00:00.000000' WHERE name = 'leader'"
                    )
            finally:
                db.close()
            taken = time.monotonic()

            code = await asyncio.to_thread(a.proc.wait, 10 * LEASE)
            print(f"exit after the lease was taken: {time.monotonic() - taken:.2f} s")
            assert code == 1, a.tail()
            assert "lost the leader lease" in a.log.read_text(), a.tail()


async def test_an_alert_sent_to_the_standby_is_processed_by_the_leader(tmp_path: Path) -> None:
    """The standby stores the webhook and answers 200 (counted as left to the leader); the
    leader's replay processes it: one card, with the alert; and both replicas' runbook
    pages show the incident."""
    async with SimWorld(speed=600, start_bot=False, settings=_settings(LEASE)) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            await b.wait_status("/readyz", 200, timeout=5)
            alert = sim_alerts.alert(
                "RollbotErrorRateHigh",
                service="payment-router",
                status="firing",
                labels={"slo": "error_rate"},
                summary="payment-router: 5xx ratio 9 %",
            )
            sent = await sim_alerts.send(
                f"{b.url}/webhooks/alertmanager",
                ALERTMANAGER_TOKEN,
                sim_alerts.webhook([alert]),
            )
            assert sent.status_code == 200, sent.text
            assert sent.json()["status"] == "accepted"
            card = await world.wait_for(
                lambda: (c := world.card()) and "RollbotErrorRateHigh" in json.dumps(c) and c,
                timeout=30,
                what="the card with the alert the standby stored",
            )
            assert [m["ts"] for m in _top_level(world)] == [card["ts"]]
            # b stored it and left it to the leader; a processed it (b runs no loop).
            assert await b.metric('rollbot_webhooks_for_leader_total{source="alertmanager"}') == [
                'rollbot_webhooks_for_leader_total{source="alertmanager"} 1.0'
            ]
            assert await a.metric("rollbot_webhooks_for_leader_total{") == []
            assert await b.metric("rollbot_watch_events_total{") == []
            # Either replica's runbook page shows the open incident (read from the database:
            # the standby's engine holds none).
            for replica in (a, b):
                page = await replica.get("/runbooks/payment-router")
                assert page.status_code == 200, page.text[:300]
                assert "No open incident" not in page.text
                assert "payment-router: 5xx ratio 9 %" in page.text


async def test_a_new_leader_keeps_its_lease_while_it_starts(tmp_path: Path) -> None:
    async with SimWorld(
        speed=600, start_bot=False, checkout=True, settings=_settings(LEASE)
    ) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            c = await Replica.start(world, "c", tmp_path)
            replicas.append(c)
            for standby in (b, c):
                await standby.wait_status("/readyz", 200, timeout=5)
            # payment-router's card is posted first: the post Slack slows down below is
            # checkout's card.
            world.attach_bot(a.url)
            await world.wait_for(
                lambda: (card := world.card()) and world.button(card, "rollout_abort"),
                timeout=60,
                what="payment-router's card with Abort",
            )
            alert = sim_alerts.alert(
                "RollbotErrorRateHigh",
                service="checkout",
                status="firing",
                labels={"slo": "error_rate"},
                summary="checkout: 5xx ratio 9 %",
            )
            sent = await sim_alerts.send(
                f"{b.url}/webhooks/alertmanager",
                ALERTMANAGER_TOKEN,
                sim_alerts.webhook([alert]),
            )
            assert sent.status_code == 200, sent.text  # stored, left to the leader's replay
            # A stops before its replay takes the webhook (rows older than 3 s): the next
            # leader's start replays it, and posts checkout's card, slowly.
            world.slack.slow_down("chat.postMessage", seconds=2 * LEASE, times=3)
            a.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(a.proc.wait, 30) in (0, -signal.SIGTERM), a.tail()

            async def new_leader() -> Replica | None:
                for replica in (b, c):
                    if await leading(replica.url):
                        return replica
                return None

            leader = await eventually(new_leader, timeout=10 * LEASE, what="B or C leading")
            other = c if leader is b else b
            taken = time.monotonic()
            await eventually(
                lambda: "replayed 1 stored Alertmanager webhook" in leader.log.read_text(),
                timeout=30,
                what=lambda: f"the new leader's start replaying the webhook\n{leader.tail()}",
            )
            assert world.card("checkout") is not None
            # The start is over (its replay posted checkout's card), two leases or more
            # after the lease was taken; the other replica tried every third of one.
            print(f"the new leader's start: {time.monotonic() - taken:.1f} s (lease {LEASE} s)")
            assert "lost the leader lease" not in leader.log.read_text(), leader.tail()
            assert "leader lease taken" not in other.log.read_text(), other.tail()
            assert leader.proc.poll() is None
            assert await leading(leader.url)
            assert await other.leader_gauge() == 0.0
