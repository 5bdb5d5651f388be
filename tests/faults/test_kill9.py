"""Fault 1: `kill -9` of the leader in the middle of an abort, and between two ticket filings.

Two real `rollbot serve` processes share one PostgreSQL database: A leads, B is the
standby (bot.runtime.leader). A sim switch stops A at an exact point, A is killed with
SIGKILL there, B takes the lease over, and every effect is counted in the sims' own logs.

- In the middle of an abort: A has claimed the abort (its `actions` row says `running`)
  and its PATCH of `status.abort` has reached the Kubernetes sim, which applied it and
  holds the answer (`KubeSim.hold_answers`); A dies before it learns the result. B takes
  over (`takeover_s`: from the kill to `rollbot_leader 1` in B's /metrics), and
  once the claim is older than `kubernetes.action_recovery_seconds` it reads the Rollout
  back (bot.actions.tier1 `recover`): the sim's log holds exactly one PATCH of the
  Rollout (`abort_patches`), the claim ends `succeeded`, the audit log has one entry for
  the abort (marked recovered, the chain intact), and the same card says "Aborted,
  verified" with one line in its thread saying rollbot restarted before it could check.
- In the middle of a circuit-breaker flip (Tier 2): A has claimed the flip under the flag's
  epoch and its semantic patch has reached the LaunchDarkly sim, which applied it and holds
  the answer (`LaunchDarklySim.hold_answers`); A dies there. B settles the claim the same
  way (bot.actions.tier2 `recover`, run by the same leader loop): it reads the flag back,
  and the sim's log holds exactly one PATCH (`flag_patches`); the claim ends `succeeded`,
  one audit entry (recovered), the card shows the breaker open with one thread line saying
  rollbot restarted; the flag's epoch has moved on, so the card's Close click flips it.
- Between two ticket filings: `/release start` on A files the first cleanup ticket; the
  Jira sim holds the second create, either before creating it (A never reached Jira) or
  after creating it with its answer held (Jira has it, A never learnt its key; Jira's
  search lags behind). A is killed there. B takes over and files the rest: exactly three
  tickets in the Jira sim (`jira_tickets`), one per kind, each recorded `filed` under its
  key in the release's records, and the thread says they are filed.

- With a thread line waiting for Slack: Slack stores no post in the channel while A aborts
  (HTTP 500), so the abort's thread line waits in A and in the database (`card_lines`); A is
  killed, Slack is well again, and B posts the line A left once its lease has run out
  (`slack.line_lease_seconds`), looking for it first: one line in the thread, as A wrote it.

Figures: `takeover_s`, `abort_patches`, `flag_patches`, `jira_tickets`,
`lines_left_by_the_dead`, `duplicates` (effects found more than once: PATCHes, audit
entries, thread lines, cards, tickets).
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.core.ports import ActionRecord
from bot.sim.harness import CHANNEL_ID, ONCALL, SimWorld
from bot.sim.launchdarkly import DEFAULT_TOKEN, LaunchDarklySim
from bot.store import SqlStore, open_store
from tests.e2e.serving import Replica, stopping
from tests.helpers import eventually

pytestmark = [pytest.mark.timeout(90), pytest.mark.peer("postgres")]

LEASE = 1.5  # server.leader_lease_seconds: how long the dead leader's lease lingers
RECOVERY = 4.0  # kubernetes.action_recovery_seconds, above the verify timeout below
VERIFY = 2.0  # kubernetes.verify_timeout_seconds

ABORT_KEY = "payments/payment-router@42:abort#0"  # the card's revision 42, epoch 0
ROLLOUT_PATH = "/namespaces/payments/rollouts/payment-router"
FLAG = "payments.new-router.circuit-open"
FLIP_KEY = f"flag:payment-router:{FLAG}:circuit-open#0"  # the flag's epoch 0
RID = "payment-router@1.13.0"
KINDS = ("remove-release-flag", "contract-migration", "delete-legacy-code")
LABEL = "rollbot-payment-router-1.13.0-"  # + the kind: on every ticket of the release


@pytest.fixture
async def store(postgres_db_url: str) -> AsyncIterator[SqlStore]:
    """The replicas' database, read as the test's own evidence."""
    opened = await open_store(postgres_db_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _leader_and_standby(
    world: SimWorld, tmp_path: Path, replicas: list[Replica]
) -> tuple[Replica, Replica]:
    """A started first and leading, then B started and standing by."""
    a = await Replica.start(world, "a", tmp_path)
    replicas.append(a)
    await _wait_leading(a, timeout=30)
    b = await Replica.start(world, "b", tmp_path)  # it has asked for the lease once
    replicas.append(b)
    assert await b.leader_gauge() == 0.0
    assert await a.leader_gauge() == 1.0
    return a, b


async def _wait_leading(replica: Replica, *, timeout: float) -> None:
    """Until `rollbot_leader 1` in the replica's /metrics: the lease is its own and its
    loops are starting (a replica's readiness says less: every replica that can serve
    is to be Ready, issue 15)."""

    async def leading() -> bool:
        return await replica.leader_gauge() == 1.0

    await eventually(
        leading,
        timeout=timeout,
        interval=0.05,
        what=lambda: f"{replica.name} leading\n{replica.tail()}",
    )


async def _kill_and_take_over(a: Replica, b: Replica) -> float:
    """`kill -9` A; seconds until B leads."""
    a.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    a.proc.wait(timeout=10)
    await _wait_leading(b, timeout=10 * LEASE)
    takeover = time.monotonic() - killed
    print(f"FIGURE takeover_s={takeover:.2f}")
    return takeover


async def _card_with_abort(world: SimWorld) -> dict[str, Any]:
    """The paused canary's card once it offers Abort (posted by A, the leader)."""
    card: dict[str, Any] = await world.wait_for(
        lambda: (c := world.card()) and world.button(c, "rollout_abort") and c,
        timeout=60,
        what="the card with Abort, posted by A",
    )
    return card


def _top_level(world: SimWorld) -> list[dict[str, Any]]:
    return [
        m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m.get("ts"))
    ]


def _header(message: dict[str, Any] | None) -> str:
    for block in (message or {}).get("blocks") or []:
        if block.get("type") == "header":
            return str(block["text"]["text"])
    return ""


async def test_kill_9_in_the_middle_of_an_abort(
    tmp_path: Path, postgres_db_url: str, store: SqlStore
) -> None:
    """Figures: takeover_s, abort_patches (1), duplicates (0)."""
    settings = {
        "server": {"leader_lease_seconds": LEASE},
        "kubernetes": {"action_recovery_seconds": RECOVERY},
    }
    async with SimWorld(
        speed=600,
        start_bot=False,
        database_url=postgres_db_url,
        verify_timeout=VERIFY,
        settings=settings,
    ) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            world.attach_bot(a.url)
            card = await _card_with_abort(world)

            # The PATCH of status.abort is applied by the sim; its answer never leaves it.
            world.kube.hold_answers(1, method="PATCH", path_contains=f"{ROLLOUT_PATH}/status")
            clicked = await world.click(card, "rollout_abort")
            assert clicked.status_code == 200, clicked.text
            await world.wait_for(
                lambda: world.kube.held_answers == 1, timeout=20, what="A's PATCH held"
            )
            claim = await store.get_action(ABORT_KEY)
            assert claim is not None and claim.status == "running", claim
            rollout = world.kube.get("rollouts", "payments", "payment-router") or {}
            assert rollout["status"]["abort"] is True

            await _kill_and_take_over(a, b)
            # The sim saw A's connection go: the answer was never delivered.
            await world.wait_for(
                lambda: world.kube.lost_answers == 1, timeout=10, what="the answer lost"
            )
            world.kube.release_answers()
            world.attach_bot(b.url)

            # B settles the claim A left running, by reading the Rollout back.
            settled = await eventually(
                lambda: _settled(store, ABORT_KEY),
                timeout=5 * RECOVERY,
                what="the abort's claim settled by B",
            )
            assert settled.status == "succeeded", settled
            assert "ended before it recorded the result" in settled.result["recovered"]
            line = f"Aborted by <@{ONCALL[0]}>: all traffic back on stable revision 41, verified "
            await world.wait_for(
                lambda: any(
                    line in (m.get("text") or "")
                    for m in world.slack.thread(CHANNEL_ID, card["ts"])
                ),
                timeout=20,
                what="the recovered abort's line in the card's thread",
            )
            shown = world.slack.message(CHANNEL_ID, card["ts"])
            assert "Aborted, verified" in _header(shown), _header(shown)
            assert f"Aborted by <@{ONCALL[0]}>" in json.dumps(shown["blocks"])

            # The sims' and the database's own records, once the card is settled.
            patches = world.kube.requests_matching("PATCH", ROLLOUT_PATH)
            abort_patches = [
                r for r in patches if r.body == {"status": {"abort": True}} and r.status == 200
            ]
            entries = [
                r.entry
                for r in await store.audit_entries()
                if r.entry.action == "abort" and r.entry.target == "payments/payment-router"
            ]
            lines = [
                m
                for m in world.slack.thread(CHANNEL_ID, card["ts"])
                if line in (m.get("text") or "")
            ]
            cards = _top_level(world)
            print(f"FIGURE abort_patches={len(abort_patches)}")
            duplicates = sum(_extra(len(x)) for x in (patches, entries, lines, cards))
            print(f"FIGURE duplicates={duplicates}")

            assert len(patches) == 1 and len(abort_patches) == 1, patches
            assert [e.result for e in entries] == ["succeeded"]
            assert entries[0].actor.startswith(f"slack:{ONCALL[0]}:"), entries[0].actor
            assert entries[0].detail["idempotency_key"] == ABORT_KEY
            assert entries[0].detail["verification"]["ok"] is True
            assert entries[0].after["aborted"] is True
            assert (await store.verify_audit()).ok
            assert len(lines) == 1, lines
            assert [m["ts"] for m in cards] == [card["ts"]]  # the same card, updated in place
            assert duplicates == 0


async def test_kill_9_in_the_middle_of_a_circuit_flip(
    tmp_path: Path, postgres_db_url: str, store: SqlStore
) -> None:
    """Figures: takeover_s, flag_patches (1), duplicates (0)."""
    with LaunchDarklySim() as ld:
        ld.add_flag("default", FLAG, on=False)
        ld.add_flag("default", "payments.new-router.enabled", on=True)
        settings = {
            "server": {"leader_lease_seconds": LEASE},
            "kubernetes": {"action_recovery_seconds": RECOVERY},
            "flags": {
                "provider": "launchdarkly",
                "url": ld.url,
                "project": "default",
                "environment": "production",
            },
        }
        async with SimWorld(
            speed=600,
            start_bot=False,
            database_url=postgres_db_url,
            verify_timeout=VERIFY,
            settings=settings,
            env={"ROLLBOT_FLAGS__API_TOKEN": DEFAULT_TOKEN},
        ) as world:
            replicas: list[Replica] = []
            with stopping(replicas):
                a, b = await _leader_and_standby(world, tmp_path, replicas)
                world.attach_bot(a.url)
                card = await world.wait_for(
                    lambda: (c := world.card()) and world.button(c, "circuit_open") and c,
                    timeout=60,
                    what="the card with the Tier 2 button, posted by A",
                )

                # The semantic patch is applied by the sim; its answer never leaves it.
                ld.hold_answers(1, method="PATCH")
                clicked = await world.click(card, "circuit_open")
                assert clicked.status_code == 200, clicked.text
                await world.wait_for(
                    lambda: ld.held_answers == 1, timeout=20, what="A's PATCH held"
                )
                claim = await store.get_action(FLIP_KEY)
                assert claim is not None and claim.status == "running", claim
                assert ld.is_on("default", FLAG)

                await _kill_and_take_over(a, b)
                await world.wait_for(lambda: ld.lost_answers == 1, timeout=10, what="answer lost")
                ld.release_answers()
                world.attach_bot(b.url)

                # B settles the flip A left running, by reading the flag back.
                settled = await eventually(
                    lambda: _settled(store, FLIP_KEY),
                    timeout=5 * RECOVERY,
                    what="the flip's claim settled by B",
                )
                assert settled.status == "succeeded", settled
                assert "ended before it recorded the result" in settled.result["recovered"]
                line = f"Opened the circuit `{FLAG}` (production) by <@{ONCALL[0]}> · read back on"
                await world.wait_for(
                    lambda: any(
                        line in (m.get("text") or "")
                        for m in world.slack.thread(CHANNEL_ID, card["ts"])
                    ),
                    timeout=20,
                    what="the recovered flip's line in the card's thread",
                )
                opened = await world.wait_for(
                    lambda: (c := world.card()) and world.button(c, "circuit_close") and c,
                    timeout=20,
                    what="the card showing the breaker open, with Close",
                )
                assert "Circuit opened, verified" in _header(opened), _header(opened)

                # The sims' and the database's own records, once the card is settled.
                flips = [r for r in ld.requests if r.method == "PATCH"]
                entries = [
                    r.entry
                    for r in await store.audit_entries()
                    if r.entry.action == "circuit-open" and r.entry.result != "duplicate"
                ]
                lines = [
                    m
                    for m in world.slack.thread(CHANNEL_ID, card["ts"])
                    if line in (m.get("text") or "")
                ]
                cards = _top_level(world)
                print(f"FIGURE flag_patches={len(flips)}")
                duplicates = sum(_extra(len(x)) for x in (flips, entries, lines, cards))
                print(f"FIGURE duplicates={duplicates}")

                assert [r.body["instructions"] for r in flips] == [[{"kind": "turnFlagOn"}]]
                assert [e.result for e in entries] == ["succeeded"]
                assert entries[0].actor.startswith(f"slack:{ONCALL[0]}:"), entries[0].actor
                assert entries[0].detail["idempotency_key"] == FLIP_KEY
                assert entries[0].detail["recovered"]
                assert entries[0].after["enabled"] is True
                assert (await store.verify_audit()).ok
                assert len(lines) == 1, lines
                assert [m["ts"] for m in cards] == [card["ts"]]  # the same card, updated
                assert duplicates == 0

                # The flag's epoch moved on: the card's next click acts.
                closed = await world.click(opened, "circuit_close")
                assert closed.status_code == 200, closed.text
                await world.wait_for(
                    lambda: not ld.is_on("default", FLAG), timeout=20, what="the breaker closed"
                )
                assert len([r for r in ld.requests if r.method == "PATCH"]) == 2


def _extra(found: int) -> int:
    """How many of one effect are there beyond the first."""
    return max(0, found - 1)


async def _settled(store: SqlStore, key: str) -> ActionRecord | None:
    record = await store.get_action(key)
    return record if record is not None and record.status != "running" else None


@pytest.mark.parametrize("answered", [False, True], ids=["before-jira", "after-jira-created"])
async def test_kill_9_between_two_ticket_filings(
    answered: bool, tmp_path: Path, postgres_db_url: str, store: SqlStore
) -> None:
    """Figures: takeover_s, jira_tickets (3), duplicates (0)."""
    settings = {
        "server": {"leader_lease_seconds": LEASE},
        "releases": {"lease_ttl_seconds": LEASE, "reconcile_seconds": 0.3, "retry_seconds": 0.3},
        "jira": {"search_settle_seconds": 2.0},
    }
    jira = {"search_lag": 1.0} if answered else {}
    async with SimWorld(
        speed=60, start_bot=False, database_url=postgres_db_url, jira=jira, settings=settings
    ) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            world.attach_bot(a.url)
            world.jira.hold_creates(after=1, answered=answered)
            started = await world.sender.slash_command(
                ONCALL[0], ONCALL[1], "start payment-router 1.13.0", command="/release"
            ).send()
            assert started.status_code == 200, started.text
            await world.wait_for(
                lambda: world.jira.held_creates == 1, timeout=30, what="the second create held"
            )
            assert world.jira.created_count == (2 if answered else 1)

            await _kill_and_take_over(a, b)
            # The held create ends once the sim sees A's connection gone (without creating,
            # when it was held before creating): nothing is left to release.
            await world.wait_for(
                lambda: world.jira.held_creates == 0, timeout=10, what="the held create dropped"
            )
            world.jira.release_creates()
            assert world.jira.created_count == (2 if answered else 1)
            world.attach_bot(b.url)

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

            issues = world.jira.issues
            labels = Counter(
                label
                for issue in issues.values()
                for label in issue["fields"]["labels"]
                if label.startswith(LABEL)
            )
            creates = [
                r for r in world.jira.requests_to("POST", "/rest/api/2/issue") if r.status == 201
            ]
            print(f"FIGURE jira_tickets={len(issues)}")
            duplicates = sum(_extra(n) for n in labels.values())  # tickets of one kind
            print(f"FIGURE duplicates={duplicates}")

            assert len(issues) == 3 and duplicates == 0, issues
            assert sorted(labels) == sorted(LABEL + kind for kind in KINDS)
            # The sim's log: three creates that made an issue (a held one A never saw
            # answered among them, when Jira had created it).
            assert len(creates) == 3, [(r.status, r.body) for r in creates]
            # The release record is complete: one `filed` record per kind, under the key
            # Jira gave that kind's ticket.
            records = await store.tickets(RID)
            assert sorted(r.kind for r in records) == sorted(KINDS)
            assert all(r.state == "filed" and r.key for r in records), records
            by_label = {
                label: key
                for key, issue in issues.items()
                for label in issue["fields"]["labels"]
                if label.startswith(LABEL)
            }
            assert {r.key for r in records} == set(issues)
            for record in records:
                assert by_label[record.label] == record.key, (record, by_label)
            assert all(r.error is None and r.filed_at is not None for r in records), records
            release = await store.get_release(RID)
            assert release is not None and release.thread_ts is not None
            assert release.started_by == ONCALL[0]


LINE_LEASE = 2.0  # slack.line_lease_seconds: how long a dead process's waiting line is its own


def _waiting_lines(url: str) -> list[tuple[str, str]]:
    """The thread lines kept in the database until Slack has them: (owner, text)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT owner, text FROM card_lines")).all()
    finally:
        engine.dispose()
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("slack", ["refusing", "answer-lost"])
async def test_kill_9_with_a_thread_line_waiting_for_slack(
    tmp_path: Path, postgres_db_url: str, slack: str
) -> None:
    """Slack takes no post while A aborts ("refusing"), or takes the abort's line and loses
    the answer while A cannot look in the thread ("answer-lost"): the line waits in A, and
    in the database. A is killed; B takes over, Slack is well again, and B posts the line
    A left (or finds it there), once. Figures: takeover_s, lines_left_by_the_dead (1),
    duplicates (0)."""
    settings = {
        "server": {"leader_lease_seconds": LEASE},
        "slack": {"line_lease_seconds": LINE_LEASE},
    }
    async with SimWorld(
        speed=600,
        start_bot=False,
        database_url=postgres_db_url,
        verify_timeout=VERIFY,
        settings=settings,
    ) as world:
        replicas: list[Replica] = []
        with stopping(replicas):
            a, b = await _leader_and_standby(world, tmp_path, replicas)
            world.attach_bot(a.url)
            card = await _card_with_abort(world)
            before = len(world.slack.thread(CHANNEL_ID, card["ts"]))
            if slack == "refusing":  # Slack stores no post in the channel (HTTP 500)
                world.slack.force_status(
                    "chat.postMessage", status=500, times=1_000_000, channel=CHANNEL_ID
                )
            else:  # the next post is stored, its answer cut; the thread cannot be read
                world.slack.lose_answers("chat.postMessage", how="cut", channel=CHANNEL_ID)
                world.slack.force_status("conversations.replies", status=500, times=1_000_000)
            clicked = await world.click(card, "rollout_abort")
            assert clicked.status_code == 200, clicked.text
            await world.wait_for(
                lambda: "Aborted, verified" in _header(world.slack.message(CHANNEL_ID, card["ts"])),
                timeout=30,
                what="the card updated: aborted, verified",
            )
            line = f"Aborted by <@{ONCALL[0]}>"
            waiting = await eventually(
                lambda: [t for _, t in _waiting_lines(postgres_db_url) if line in t],
                timeout=20,
                what="the abort's line kept in the database, waiting for Slack",
            )
            in_slack = len(world.slack.thread(CHANNEL_ID, card["ts"])) - before
            assert in_slack == (0 if slack == "refusing" else 1)

            await _kill_and_take_over(a, b)
            world.slack.clear_faults()
            world.attach_bot(b.url)

            def abort_lines() -> list[dict[str, Any]]:
                thread = world.slack.thread(CHANNEL_ID, card["ts"])
                return [m for m in thread if line in (m.get("text") or "")]

            await world.wait_for(
                abort_lines, timeout=10 * LINE_LEASE + 20, what="B posting the line A left"
            )
            await eventually(
                lambda: _waiting_lines(postgres_db_url) == [],
                timeout=20,
                what="no line left waiting",
            )
            lines = abort_lines()
            keys = Counter(
                (m.get("metadata") or {}).get("event_payload", {}).get("key")
                for m in world.slack.thread(CHANNEL_ID, card["ts"])
            )
            duplicates = _extra(len(lines)) + sum(_extra(n) for k, n in keys.items() if k)
            print(f"FIGURE lines_left_by_the_dead={len(waiting)}")
            print(f"FIGURE duplicates={duplicates}")
            assert len(lines) == 1, lines
            assert duplicates == 0, keys
            assert lines[0]["text"] == waiting[0]  # as A wrote it, stamped when it happened
            assert len(_top_level(world)) == 1
