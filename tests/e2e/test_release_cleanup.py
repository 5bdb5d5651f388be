"""Issue 5 end to end: a release starts, its cleanup tickets are filed in Jira once, their
dates follow the Rollout, and the schedule reminds, escalates and refuses.

Everything runs for real on loopback: the Kubernetes API sim with the Argo controller sim,
the Slack sim, the Jira sim (REST v2, reached through the real `jira` client), rollbot
built by `bot.wiring.build` with its APScheduler on the SQLite database, and signed Slack
requests. Controlled time: the bot's `ScaledClock` runs days in seconds where a test needs
reminders and escalations; otherwise the system clock.

What is proven here:
- `/release start` files three tickets (assignee, labels, provisional due dates, links);
  the same release started again files nothing; the checklist shows its evidence;
- the Rollout fully promoted moves the due dates to the real ones (Jira and thread);
- abort stops the clocks (comments, no reminder jobs), retry restarts them;
- reminders two days before and the escalation after the due date fire on the controlled
  clock, at the right rollbot time, once each;
- the NOT NULL ticket marked done before 72 h is refused (comment, reopened, thread);
- an experiment flag gives a fourth ticket, dated once a winner is declared;
- Jira down for ten (rollbot) minutes at start: filed once it is back, exactly once, and
  the thread says they are late; a 400 names the field and hides nothing;
- `/release status`, `/release list` and the App Home show releases and their tickets;
- auto-start from the watch, when the service enables it;
- the release card follows the release in place: one message, posted "started", then
  `chat.update`d (same ts) to rolling out, aborted, retried, fully rolled out, reverted,
  never twice with the same content; Slack answering 503 or 429 to an update is retried
  (the card's job) without posting a second card;
- `/release start` on a revision the cluster aborted records nothing, files nothing and
  says so with how to go on; after the retry the same start files the tickets.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.core.model import ReleasePhase
from bot.runtime.scheduler import ScaledClock
from bot.sim.harness import CHANNEL_ID, LEAD, LEAD_EMAIL, ONCALL, SimWorld
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)

RID = "payment-router@1.13.0"


async def _start(world: SimWorld, text: str = "start payment-router 1.13.0") -> Any:
    response = await world.sender.slash_command(
        ONCALL[0], ONCALL[1], text, command="/release", channel_id=CHANNEL_ID
    ).send()
    assert response.status_code == 200, response.text
    return response


async def _release(world: SimWorld) -> Any:
    return await world.rollbot.store.get_release(RID)


def _by_kind(world: SimWorld) -> dict[str, dict[str, Any]]:
    out = {}
    for issue in world.jira.issues.values():
        kind = next(
            label.removeprefix("rollbot-payment-router-1.13.0-")
            for label in issue["fields"]["labels"]
            if label.startswith("rollbot-payment-router-1.13.0-")
        )
        out[kind] = issue
    return out


def _thread_texts(world: SimWorld, release: Any) -> list[str]:
    return [m.get("text") or "" for m in world.slack.thread(CHANNEL_ID, release.thread_ts)]


async def _wait_thread(world: SimWorld, fragment: str, *, timeout: float = 30) -> str:
    seen: list[str] = []

    async def find() -> str | None:
        release = await _release(world)
        if release is None or release.thread_ts is None:
            return None
        seen[:] = _thread_texts(world, release)
        return next((t for t in seen if fragment in t), None)

    return await eventually(
        find,
        timeout=timeout,
        interval=0.05,
        what=lambda: f"a thread message with {fragment!r}; thread: {seen}",
    )


async def _wait_release(world: SimWorld, predicate: Any, what: str, timeout: float = 40) -> Any:
    async def matching() -> Any:
        release = await _release(world)
        return release if release is not None and predicate(release) else None

    return await eventually(matching, timeout=timeout, interval=0.05, what=what)


# ── start, tickets, dates ───────────────────────────────────────────────────────────────


async def test_start_files_three_tickets_once_then_dates_move_at_full_promotion() -> None:
    async with SimWorld(speed=600, analysis_at_25="Successful", jira=True) as world:
        await _start(world)
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        release = await _wait_release(world, lambda r: r.thread_ts, "the release thread")
        assert release.owner == LEAD_EMAIL and release.owner_slack == LEAD[0]
        await _wait_thread(world, "Cleanup tickets filed")

        tickets = _by_kind(world)
        assert set(tickets) == {"remove-release-flag", "contract-migration", "delete-legacy-code"}
        flag = tickets["remove-release-flag"]["fields"]
        assert flag["summary"] == (
            "Remove release flag payments.new-router.enabled (payment-router 1.13.0)"
        )
        assert flag["assignee"]["emailAddress"] == LEAD_EMAIL
        assert {"rollbot", "rollbot-payment-router-1.13.0"} <= set(flag["labels"])
        assert "provisional" in flag["description"]
        assert "/runbooks/payment-router" in flag["description"]  # the runbook page
        # Provisional: counted from start + the expected rollout (24 h by default).
        estimate = (release.clock_started_at + timedelta(hours=24)).date()
        assert flag["duedate"] == (estimate + timedelta(days=30)).isoformat()
        contract = tickets["contract-migration"]["fields"]
        assert contract["duedate"] == (estimate + timedelta(days=14)).isoformat()
        assert "NOT NULL" in contract["summary"]
        assert tickets["delete-legacy-code"]["fields"]["duedate"] == flag["duedate"]

        # The same release again (a double-typed command, CI re-run): nothing new.
        await _start(world)
        await world.wait_for(
            lambda: any("already started" in str(r.body) for r in world.slack.responses),
            what="the already-started answer",
        )
        assert world.jira.created_count == 3

        # The Rollout goes on to 100 %: due dates move to the real ones.
        release = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        real = release.full_rollout_at.date()
        await world.wait_for(
            lambda: (
                _by_kind(world)["remove-release-flag"]["fields"]["duedate"]
                == (real + timedelta(days=30)).isoformat()
            ),
            what="the flag removal due date moved",
        )
        moved = await _wait_thread(world, "Fully rolled out")
        assert "Due dates" in moved
        assert (
            _by_kind(world)["contract-migration"]["fields"]["duedate"]
            == (real + timedelta(days=14)).isoformat()
        )
        key = _by_kind(world)["remove-release-flag"]["key"]
        assert any("Full rollout" in c for c in world.jira.comments(key))
        assert world.jira.created_count == 3

        # The checklist, with its evidence.
        checklist = await world.wait_for(
            lambda: next(
                (
                    m
                    for m in world.slack.thread(CHANNEL_ID, release.thread_ts)
                    if "checklist" in (m.get("text") or "").lower()
                ),
                None,
            ),
            what="the checklist",
        )
        body = str(checklist["blocks"])
        assert "AnalysisTemplate payment-router-slo" in body
        assert "payment-router.md" in body
        assert "risk_surface" in body  # ❌ with what to set
        await world.wait_for(
            lambda: "PAY-1" in str(world.slack.message(CHANNEL_ID, checklist["ts"])),
            what="the checklist updated with the ticket keys",
        )

        audit = [r.entry.action for r in await world.rollbot.store.audit_entries()]
        assert audit.count("release.start") == 1
        assert audit.count("release.ticket.file") == 3
        assert "release.full-rollout" in audit


async def test_abort_stops_the_clocks_and_retry_restarts_them() -> None:
    async with SimWorld(speed=600, analysis_at_25="Inconclusive", jira=True) as world:
        await _start(world)
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        await _wait_thread(world, "Cleanup tickets filed")
        scheduler = world.rollbot.scheduler
        assert scheduler is not None
        await world.wait_for(lambda: scheduler.leader, what="the scheduler lease")
        await world.rollbot.releases.reconcile(RID)
        assert [j for j in await scheduler.jobs(f"{RID}:notice:") if j.kind == "notice"]

        await world.wait_for_card()
        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "payment-router abort"
        ).send()
        assert response.status_code == 200
        release = await _wait_release(world, lambda r: r.phase is ReleasePhase.ABORTED, "abort")
        assert release.stopped_at is not None
        await _wait_thread(world, "clocks are stopped")
        for issue in world.jira.issues.values():
            await world.wait_for(
                lambda key=issue["key"]: any(
                    "clock is stopped" in c for c in world.jira.comments(key)
                ),
                what=f"the clock-stop comment on {issue['key']}",
            )
        await _wait_no_jobs(world, f"{RID}:notice:")

        response = await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "payment-router retry"
        ).send()
        assert response.status_code == 200
        retried = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.PROGRESSING, "the retry"
        )
        assert retried.clock_started_at > release.clock_started_at
        assert retried.stopped_at is None and retried.full_rollout_at is None
        await _wait_thread(world, "Release retried")
        # the schedule is rebuilt right after the thread message
        await eventually(
            lambda: scheduler.jobs(f"{RID}:notice:"), interval=0.05, what="the notice jobs back"
        )
        assert world.jira.created_count == 3


async def test_reminder_and_escalation_fire_on_a_controlled_clock() -> None:
    # Rollbot time runs 200,000× faster: 30 days of due dates take about 13 s.
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    clock = ScaledClock(start, speed=200_000)
    async with SimWorld(
        speed=600,
        analysis_at_25="Successful",
        jira=True,
        clock=clock,
        settings={
            "releases": {"jira_poll_seconds": 30 * 86400, "reconcile_seconds": 0.5},
            "services": {"payment-router": {"release": {"timezone": "Europe/Berlin"}}},
        },
    ) as world:
        await _start(world)
        release = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        contract_key = _by_kind(world)["contract-migration"]["key"]
        # Close the two 30-day tickets so only the contract ticket (due in 14 days) speaks.
        for kind in ("remove-release-flag", "delete-legacy-code"):
            world.jira.transition(_by_kind(world)[kind]["key"], "Done")

        reminder = await _wait_thread(world, "Reminder", timeout=60)
        assert contract_key in reminder and "<@U0LEAD>" in reminder
        escalation = await world.wait_for(
            lambda: next(
                (
                    m
                    for m in world.slack.messages(CHANNEL_ID)
                    if "Overdue" in (m.get("text") or "") and not m.get("thread_ts")
                ),
                None,
            ),
            timeout=60,
            what="the escalation",
        )
        assert contract_key in escalation["text"]

        # When, in rollbot time: the reminder at 09:30 Berlin two days before the due
        # date, the escalation at 09:30 Berlin the day after it.
        due = release.full_rollout_at.astimezone(_berlin()).date() + timedelta(days=14)

        # A notice is audited after it was posted (the entry says it went out), so the
        # escalation can be in Slack a moment before its audit entry: wait for the entry.
        async def audited() -> list[Any] | None:
            entries = [r.entry for r in await world.rollbot.store.audit_entries()]
            kinds = {e.action for e in entries}
            return entries if {"release.reminder", "release.escalation"} <= kinds else None

        entries = await eventually(audited, what="the reminder and escalation audited")
        reminders = [e for e in entries if e.action == "release.reminder"]
        escalations = [e for e in entries if e.action == "release.escalation"]
        assert [e.detail["key"] for e in reminders] == [contract_key]
        assert escalations and escalations[0].detail["key"] == contract_key
        remind_at = _local(due - timedelta(days=2))
        escalate_at = _local(due + timedelta(days=1))
        assert remind_at <= reminders[0].at < remind_at + timedelta(hours=12)
        assert escalate_at <= escalations[0].at < escalate_at + timedelta(hours=12)
        # Done tickets were never reminded.
        assert all("contract" in e.detail["ticket"] for e in reminders + escalations)


def _berlin() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Berlin")


def _local(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 30, tzinfo=_berlin()).astimezone(UTC)


async def test_the_contract_step_done_too_early_is_refused_and_reopened() -> None:
    async with SimWorld(speed=600, analysis_at_25="Successful", jira=True) as world:
        await _start(world)
        await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        key = _by_kind(world)["contract-migration"]["key"]
        world.jira.transition(key, "Done")

        await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "status payment-router", command="/release"
        ).send()
        refusal = await _wait_thread(world, "marked done too early")
        assert key in refusal and "reopened it" in refusal
        assert world.jira.issues[key]["fields"]["status"]["statusCategory"]["key"] == "new"
        assert any("refuses" in c for c in world.jira.comments(key))
        # Once per done event: asking again does not refuse twice.
        await world.rollbot.releases.poll(RID)
        release = await _release(world)
        assert sum("too early" in t for t in _thread_texts(world, release)) == 1
        entries = [r.entry.action for r in await world.rollbot.store.audit_entries()]
        assert entries.count("release.contract.refuse") == 1


async def test_experiment_flag_gives_a_fourth_ticket_dated_by_the_winner() -> None:
    async with SimWorld(
        speed=600,
        analysis_at_25="Successful",
        jira=True,
        settings={
            "services": {
                "payment-router": {"flags": {"experiment": "payments.dynamic-currency.enabled"}}
            }
        },
    ) as world:
        await _start(world)
        await world.wait_for(lambda: world.jira.created_count == 4, what="four tickets")
        experiment = _by_kind(world)["remove-experiment-flag"]
        assert experiment["fields"]["duedate"] is None
        assert "payments.dynamic-currency.enabled" in experiment["fields"]["summary"]
        release = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "winner payment-router treatment", command="/release"
        ).send()
        declared = await _wait_release(world, lambda r: r.winner == "treatment", "the winner")
        anchor = max(declared.winner_at, release.full_rollout_at).date()
        await world.wait_for(
            lambda: (
                _by_kind(world)["remove-experiment-flag"]["fields"]["duedate"]
                == (anchor + timedelta(days=14)).isoformat()
            ),
            what="the experiment ticket due 14 days after the winner",
        )
        await _wait_thread(world, "Winner `treatment`")
        assert world.jira.created_count == 4


async def _wait_no_jobs(world: SimWorld, prefix: str) -> None:
    scheduler = world.rollbot.scheduler
    assert scheduler is not None

    async def none_left() -> bool:
        return not await scheduler.jobs(prefix)

    await eventually(none_left, interval=0.05, what=f"no jobs left under {prefix}")


# ── faults ──────────────────────────────────────────────────────────────────────────────


async def test_jira_down_ten_minutes_at_start_files_late_exactly_once() -> None:
    # 300× rollbot time: Jira is down for ten rollbot minutes (2 s); retries every 30 s.
    clock = ScaledClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC), speed=300)
    async with SimWorld(
        speed=60,
        jira=True,
        clock=clock,
        settings={"releases": {"retry_seconds": 30}},
    ) as world:
        world.jira.set_down(True, down_mode="refuse")
        down_since = clock.now()
        await _start(world)
        down = await _wait_thread(world, "Jira is unreachable")
        assert "keeps trying" in down
        assert world.jira.created_count == 0
        records = await world.rollbot.store.tickets(RID)
        assert {r.state for r in records} == {"pending"}
        # Down for ten minutes of rollbot time: wait for the bot's clock, not a fixed sleep.
        back_at = down_since + timedelta(minutes=10)
        await world.wait_for(lambda: clock.now() >= back_at, timeout=30, what="ten minutes")
        world.jira.set_down(False)
        late = await _wait_thread(world, "filed *late*", timeout=30)
        assert "Jira was unreachable" in late
        assert world.jira.created_count == 3
        assert sorted(i["key"] for i in world.jira.issues.values()) == ["PAY-1", "PAY-2", "PAY-3"]
        # "filed *late*" is said once every record is `filed`; a later filing run finds
        # nothing to file, and no filing retry is left in the schedule.
        records = await world.rollbot.store.tickets(RID)
        assert {r.state for r in records} == {"filed"}
        await _wait_no_jobs(world, f"{RID}:file-tickets")
        assert world.jira.created_count == 3
        release = await _release(world)
        assert sum("Jira is unreachable" in t for t in _thread_texts(world, release)) == 1


async def test_a_400_from_jira_names_the_field_and_hides_nothing() -> None:
    async with SimWorld(speed=60, jira={"projects": {"PAY": {"required": ["priority"]}}}) as world:
        await _start(world)
        refused = await _wait_thread(world, "Jira refused")
        assert "priority" in refused and "Field 'priority' is required" in refused
        assert "services.payment-router.jira" in refused
        assert world.jira.created_count == 0
        records = await world.rollbot.store.tickets(RID)
        assert {r.state for r in records} == {"failed"}
        assert all("priority" in (r.error or "") for r in records)
        await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "status payment-router", command="/release"
        ).send()
        await world.wait_for(
            lambda: any("priority" in str(r.body) for r in world.slack.responses),
            what="the status showing the refusal",
        )


# ── reading: status, list, App Home; auto-start ─────────────────────────────────────────


async def test_status_list_and_home_show_releases_and_tickets() -> None:
    async with SimWorld(speed=60, jira=True) as world:
        await _start(world)
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        await _wait_thread(world, "Cleanup tickets filed")
        await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "status payment-router", command="/release"
        ).send()
        status = await world.wait_for(
            lambda: next((r for r in world.slack.responses if "PAY-2" in str(r.body)), None),
            what="the status answer",
        )
        assert "provisional" in str(status.body)
        await world.sender.slash_command(ONCALL[0], ONCALL[1], "list", command="/release").send()
        await world.wait_for(
            lambda: (
                sum(
                    "payment-router" in str(r.body) and "1.13.0" in str(r.body)
                    for r in world.slack.responses
                )
                >= 2
            ),
            what="the list answer",
        )
        await world.sender.slash_command(
            ONCALL[0], ONCALL[1], "status checkout", command="/release"
        ).send()
        await world.wait_for(
            lambda: (
                any("Known services" in str(r.body) for r in world.slack.responses)
                or any("Known services" in str(e) for e in world.slack.ephemerals)
            ),
            what="the unknown-service answer listing the known ones",
        )
        response = await world.sender.app_home_opened(LEAD[0]).send()
        assert response.status_code == 200
        home = await world.wait_for(
            lambda: world.slack.home_view(LEAD[0]), what="the App Home view"
        )
        assert home["type"] == "home"
        assert "PAY-1" in str(home["blocks"]) and "1.13.0" in str(home["blocks"])


async def test_auto_start_from_the_watch_when_the_service_enables_it() -> None:
    async with SimWorld(
        speed=60,
        jira=True,
        settings={"services": {"payment-router": {"release": {"auto_start": True}}}},
    ) as world:
        release = await _wait_release(
            world, lambda r: r.thread_ts and r.revision, "the auto-started release, bound"
        )
        assert release.source == "watch" and release.revision == 42
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        await _wait_thread(world, "Cleanup tickets filed")
        assert len(await world.rollbot.store.list_releases()) == 1


async def test_a_git_revert_to_the_previous_version_stops_the_clocks() -> None:
    from bot.sim import world as sim_world

    async with SimWorld(speed=600, analysis_at_25="Successful", jira=True) as world:
        await _start(world)
        release = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        assert release.previous_version == "1.12.4"
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        # Tier 3: the release's commit is reverted in Git; the sync brings 1.12.4 back.
        sim_world.start_new_revision(world.kube, image=sim_world.STABLE_IMAGE)
        reverted = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.REVERTED, "the revert"
        )
        assert reverted.stopped_at is not None
        await _wait_thread(world, "Release reverted")
        for issue in world.jira.issues.values():
            await world.wait_for(
                lambda key=issue["key"]: any("reverted" in c for c in world.jira.comments(key)),
                what=f"the revert comment on {issue['key']}",
            )
        await _wait_no_jobs(world, f"{RID}:notice:")


# ── the release card ────────────────────────────────────────────────────────────────────


def _blocks_of(body: Any) -> list[dict[str, Any]]:
    """The blocks of a recorded chat.postMessage/chat.update (JSON, or a form's string)."""
    blocks = body.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def _card_words(blocks: list[dict[str, Any]]) -> tuple[str, str]:
    """(header, Phase field) of a release card's blocks."""
    return blocks[0]["text"]["text"], blocks[1]["fields"][0]["text"]


def _release_cards(world: SimWorld) -> list[dict[str, Any]]:
    """The top-level messages in the channel that are release cards of 1.13.0."""
    return [
        m
        for m in world.slack.messages(CHANNEL_ID)
        if m.get("thread_ts") in (None, m["ts"]) and f"`{RID}`" in json.dumps(m.get("blocks"))
    ]


def _card_updates(world: SimWorld, ts: str) -> list[Any]:
    return [c for c in world.slack.calls_to("chat.update") if c.body.get("ts") == ts]


async def _wait_card(world: SimWorld, ts: str, emoji: str, words: str) -> dict[str, Any]:
    def shows() -> dict[str, Any] | None:
        message = world.slack.message(CHANNEL_ID, ts)
        if not message or not message.get("blocks"):
            return None
        header, phase = _card_words(message["blocks"])
        return message if header.startswith(f"{emoji} ") and words in phase else None

    card: dict[str, Any] = await world.wait_for(
        shows, timeout=40, what=f"the release card saying {emoji} {words!r}"
    )
    return card


async def _rollback(world: SimWorld, text: str) -> None:
    response = await world.sender.slash_command(ONCALL[0], ONCALL[1], text).send()
    assert response.status_code == 200


async def test_the_release_card_follows_the_release_in_place() -> None:
    from bot.sim import world as sim_world

    async with SimWorld(speed=600, analysis_at_25="Inconclusive", jira=True) as world:
        await _start(world)
        release = await _wait_release(world, lambda r: r.thread_ts and r.revision, "bound")
        ts = release.thread_ts
        (posted,) = [
            c for c in world.slack.calls_to("chat.postMessage") if c.response.get("ts") == ts
        ]
        header, phase = _card_words(_blocks_of(posted.body))
        assert header == "🚀 payment-router 1.13.0"
        assert phase == "*Phase*\n🚀 Started · waiting for the Rollout to run 1.13.0"
        await _wait_card(world, ts, "🔄", "Rolling out")
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")

        await world.wait_for_card()
        await _rollback(world, "payment-router abort")
        await _wait_card(world, ts, "🛑", "Aborted")
        await _rollback(world, "payment-router retry")
        await _wait_card(world, ts, "🔁", "· rolling out again")
        await _rollback(world, "payment-router promote-full")
        await _wait_card(world, ts, "✅", "Fully rolled out")
        # Tier 3: the release's commit reverted in Git; the sync brings 1.12.4 back.
        sim_world.start_new_revision(world.kube, image=sim_world.STABLE_IMAGE)
        card = await _wait_card(world, ts, "↩️", "Reverted to 1.12.4")
        assert "clocks stopped" in card["text"]

        # One card, posted once and updated in place, through every phase in order.
        assert [m["ts"] for m in _release_cards(world)] == [ts]
        updates = [c for c in _card_updates(world, ts) if c.status == 200]
        assert {c.body["channel"] for c in updates} == {CHANNEL_ID}
        shown = [_card_words(_blocks_of(c.body))[0].split()[0] for c in updates]
        assert shown == ["🔄", "🛑", "🔁", "✅", "↩️"], shown
        # Coalesced: never the same content twice (the same phase seen again sends nothing).
        contents = [json.dumps(_blocks_of(c.body), sort_keys=True) for c in updates]
        assert len(set(contents)) == len(contents)
        assert await world.rollbot.store.release_card_digest(RID) is not None


async def test_slack_refusing_a_card_update_is_retried_in_place() -> None:
    from bot.sim import world as sim_world

    async with SimWorld(
        speed=600,
        analysis_at_25="Successful",
        jira=True,
        settings={"releases": {"retry_seconds": 0.3}},
    ) as world:
        await _start(world)
        release = await _wait_release(
            world, lambda r: r.phase is ReleasePhase.FULLY_ROLLED_OUT, "full rollout"
        )
        ts = release.thread_ts
        await _wait_card(world, ts, "✅", "Fully rolled out")

        def checklist_updated_after_the_card() -> bool:
            # The full rollout updates the card first and the checklist last: wait for both,
            # so that the failures forced below meet the card's next update alone.
            calls = world.slack.calls_to("chat.update")
            card = [i for i, c in enumerate(calls) if c.body.get("ts") == ts]
            return bool(card) and any(c.body.get("ts") != ts for c in calls[card[-1] + 1 :])

        await world.wait_for(checklist_updated_after_the_card, what="the checklist updated")
        scheduler = world.rollbot.scheduler
        assert scheduler is not None
        await world.wait_for(lambda: scheduler.leader, what="the scheduler lease")
        before = len(_card_updates(world, ts))
        # Slack's own trouble (503), then rate limits past the client's own two retries.
        world.slack.force_status("chat.update", status=503, channel=CHANNEL_ID)
        world.slack.force_ratelimit("chat.update", retry_after=1, times=3)
        sim_world.start_new_revision(world.kube, image=sim_world.STABLE_IMAGE)
        await _wait_card(world, ts, "↩️", "Reverted to 1.12.4")
        statuses = [c.status for c in _card_updates(world, ts)[before:]]
        assert statuses == [503, 429, 429, 429, 200], statuses
        assert [m["ts"] for m in _release_cards(world)] == [ts]  # never posted again
        assert not await scheduler.jobs(f"{RID}:card")


async def test_start_on_an_aborted_revision_files_nothing_and_says_how_to_go_on() -> None:
    async with SimWorld(speed=600, analysis_at_25="Inconclusive", jira=True) as world:

        def rollout_aborted() -> bool:
            status = world.kube.get("rollouts", "payments", "payment-router")["status"]
            return bool(status.get("abort"))

        await world.wait_for_card()
        await _rollback(world, "payment-router abort")
        await world.wait_for(rollout_aborted, what="the Rollout aborted")
        await _start(world)
        answer = await world.wait_for(
            lambda: next(
                (r.body["text"] for r in world.slack.responses if "aborted it" in str(r.body)),
                None,
            ),
            what="the answer to the start",
        )
        # The revision's state up front, that nothing was done, and how to go on.
        assert answer.startswith(
            ":warning: payment-router 1.13.0 is revision 42 of the Rollout "
            "`payments/payment-router`, and the cluster aborted it: the stable version "
            "1.12.4 serves all the traffic. Nothing was recorded and no cleanup tickets "
            "were filed"
        ), answer
        assert "retry the rollout (`/rollback payment-router retry`)" in answer
        assert "then run `/release start payment-router 1.13.0` again" in answer
        assert "start the next version" in answer
        assert world.jira.created_count == 0
        assert await _release(world) is None
        assert _release_cards(world) == []
        refused = [
            r.entry
            for r in await world.rollbot.store.audit_entries()
            if r.entry.action == "release.start"
        ]
        assert [(e.target, e.result) for e in refused] == [(RID, "refused")]

        # As the answer says: retry the rollout, then start the release again.
        await _rollback(world, "payment-router retry")
        await world.wait_for(lambda: not rollout_aborted(), what="the Rollout retried")
        # …once the watch has passed the retry on (it delivers each state it read to the
        # cards, then to the releases: a release started in between would see the abort).
        await world.wait_for(
            lambda: (
                (known := world.rollbot.cards.known_state("payments/payment-router@42")) is not None
                and not known.aborted
                and not world.rollbot.watch.refreshing
            ),
            what="the watch past the retry",
        )
        await _start(world)
        started = await world.wait_for(
            lambda: next(
                (r.body["text"] for r in world.slack.responses if "started:" in str(r.body)),
                None,
            ),
            what="the release started",
        )
        assert "Release payment-router 1.13.0 started: revision 42 is rolling out." in started
        await world.wait_for(lambda: world.jira.created_count == 3, what="three tickets")
        release = await _release(world)
        assert release.phase is ReleasePhase.PROGRESSING and release.revision == 42
        assert len(_release_cards(world)) == 1


async def test_the_release_card_meets_a_429_and_a_lost_answer_and_is_posted_once() -> None:
    """A busy channel: the release's card is refused with a 429, then its retry is
    delivered but the answer lost. It is looked for under its key, adopted, never posted
    twice, and the release has its thread (the filing says "filed" in it)."""
    async with SimWorld(speed=600, analysis_at_25="Successful", jira=True) as world:
        # A healthy canary: no incident card competes for these faults.
        world.slack.force_ratelimit("chat.postMessage", retry_after=1)
        world.slack.lose_answers("chat.postMessage", how="429")
        await _start(world)
        release = await _wait_release(world, lambda r: r.thread_ts, "the release thread")
        await _wait_thread(world, "Cleanup tickets filed")
        top = [m for m in world.slack.messages(CHANNEL_ID) if m.get("thread_ts") in (None, m["ts"])]
        assert [m["ts"] for m in top] == [release.thread_ts], [m.get("text") for m in top]
        refused = [c for c in world.slack.calls_to("chat.postMessage") if c.status == 429]
        assert len(refused) == 2
