"""bot.core.cleanup: a release's cleanup tickets, their dates, and the nudges to their owners.

Aspects under test:
- plan(): the three tickets (and the experiment flag's only when the service has one), their
  summaries, labels and exact dates from a given full rollout;
- provisional dates from the estimate, real ones after the full rollout is seen; abort and
  retry restart the estimate from the retry;
- due dates are calendar dates in the policy's zone (the local date can differ from the UTC
  date at the anchor); not_before is exact elapsed time across a DST change;
- notices(): reminders and escalations at local wall time across DST changes (spring-forward
  gap, autumn ambiguity), last and next escalation around `now`, the reminder superseded by
  the first escalation, done tickets and stopped clocks stay quiet;
- the experiment clock counts from the later of the winner and the full rollout;
- advance(): binding, progress, abort, retry, full rollout, revert, the next release, older
  revisions; idempotent;
- contract_wait(), image_version(), slug and labels, describe(), CleanupPolicy validation;
- properties: every notice is aware UTC; reminders land on `due - reminder_days_before` at
  `notify_at` local; escalations bracket `now`; advance is idempotent.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core import cleanup
from bot.core.cleanup import (
    CleanupPolicy,
    CleanupSubject,
    Notice,
    PlannedTicket,
    ReleaseEvent,
    RolloutObservation,
)
from bot.core.model import Release, ReleasePhase, TicketKind

K = TicketKind
E = ReleaseEvent
STARTED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SUBJECT = CleanupSubject(
    release_flag="payments.new-router.enabled", legacy_code="legacy routing code"
)
WITH_EXPERIMENT = replace(SUBJECT, experiment_flag="payments.new-router.ab")
RID = "payment-router@1.13.0"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def release(**changes: object) -> Release:
    base = Release(
        id=RID,
        service="payment-router",
        version="1.13.0",
        phase=ReleasePhase.PROGRESSING,
        started_at=STARTED_AT,
        clock_started_at=STARTED_AT,
        revision=7,
        previous_version="1.12.4",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def obs(
    revision: int = 7,
    version: str | None = "1.13.0",
    *,
    at: str = "2026-03-02T10:05:00",
    stable: str | None = "1.12.4",
    promoted: bool = False,
    aborted: bool = False,
) -> RolloutObservation:
    return RolloutObservation(
        revision=revision,
        version=version,
        stable_version=stable,
        fully_promoted=promoted,
        aborted=aborted,
        at=utc(at),
    )


def dues(tickets: list[PlannedTicket]) -> dict[TicketKind, date | None]:
    return {t.kind: t.due for t in tickets}


def ticket(kind: TicketKind = K.REMOVE_RELEASE_FLAG, due: date | None = None) -> PlannedTicket:
    return PlannedTicket(
        kind=kind,
        summary="s",
        label="l",
        due=due,
        not_before=None,
        provisional=False,
        anchor=None,
    )


def shown(found: list[Notice]) -> list[tuple[str, str]]:
    return [(n.kind, n.at.isoformat()) for n in found]


# ── plan ─────────────────────────────────────────────────────────────────────────────────


def test_plan_from_a_full_rollout_in_utc() -> None:
    full = utc("2026-03-03T14:00:00")
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=full)
    assert cleanup.plan(rel, SUBJECT, CleanupPolicy()) == [
        PlannedTicket(
            kind=K.REMOVE_RELEASE_FLAG,
            summary="Remove release flag payments.new-router.enabled (payment-router 1.13.0)",
            label="rollbot-payment-router-1.13.0-remove-release-flag",
            due=date(2026, 4, 2),
            not_before=None,
            provisional=False,
            anchor=full,
        ),
        PlannedTicket(
            kind=K.CONTRACT_MIGRATION,
            summary="Apply the NOT NULL constraint (contract step) for payment-router 1.13.0",
            label="rollbot-payment-router-1.13.0-contract-migration",
            due=date(2026, 3, 17),
            not_before=utc("2026-03-06T14:00:00"),
            provisional=False,
            anchor=full,
        ),
        PlannedTicket(
            kind=K.DELETE_LEGACY_CODE,
            summary="Delete the legacy routing code (payment-router 1.13.0)",
            label="rollbot-payment-router-1.13.0-delete-legacy-code",
            due=date(2026, 4, 2),
            not_before=None,
            provisional=False,
            anchor=full,
        ),
    ]


@pytest.mark.parametrize(
    ("subject", "kinds"),
    [
        (SUBJECT, [K.REMOVE_RELEASE_FLAG, K.CONTRACT_MIGRATION, K.DELETE_LEGACY_CODE]),
        (WITH_EXPERIMENT, list(TicketKind)),
        (replace(SUBJECT, experiment_flag=""), list(TicketKind)[:3]),
    ],
    ids=["no-experiment-flag", "with-experiment-flag", "empty-experiment-flag"],
)
def test_experiment_ticket_only_with_an_experiment_flag(
    subject: CleanupSubject, kinds: list[TicketKind]
) -> None:
    assert [t.kind for t in cleanup.plan(release(), subject, CleanupPolicy())] == kinds


def test_experiment_ticket_without_a_winner_has_no_date() -> None:
    rel = release(full_rollout_at=utc("2026-03-03T14:00:00"))
    last = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())[-1]
    assert last.summary == "Remove experiment flag payments.new-router.ab (payment-router 1.13.0)"
    assert (last.due, last.anchor, last.not_before) == (None, None, None)


def test_summary_without_a_release_flag() -> None:
    first = cleanup.plan(release(), CleanupSubject(release_flag=None), CleanupPolicy())[0]
    assert first.summary == ("Remove the release flag of payment-router (payment-router 1.13.0)")


def test_provisional_from_the_estimate_then_real_after_full_rollout() -> None:
    rel = release(phase=ReleasePhase.STARTED, revision=None, previous_version=None)
    policy = CleanupPolicy()
    assert cleanup.estimated_full_rollout(rel, policy) == utc("2026-03-03T10:00:00")
    early = cleanup.plan(rel, SUBJECT, policy)
    assert all(t.provisional for t in early)
    assert dues(early) == {
        K.REMOVE_RELEASE_FLAG: date(2026, 4, 2),
        K.CONTRACT_MIGRATION: date(2026, 3, 17),
        K.DELETE_LEGACY_CODE: date(2026, 4, 2),
    }
    assert early[1].not_before == utc("2026-03-06T10:00:00")

    rel, events = cleanup.advance(rel, obs(at="2026-03-02T10:05:00"))
    assert events == [E.BOUND, E.PROGRESSING]
    rel, events = cleanup.advance(rel, obs(at="2026-03-04T22:00:00", promoted=True))
    assert events == [E.FULL_ROLLOUT]
    assert cleanup.estimated_full_rollout(rel, policy) == utc("2026-03-04T22:00:00")
    real = cleanup.plan(rel, SUBJECT, policy)
    assert not any(t.provisional for t in real)
    assert dues(real) == {
        K.REMOVE_RELEASE_FLAG: date(2026, 4, 3),
        K.CONTRACT_MIGRATION: date(2026, 3, 18),
        K.DELETE_LEGACY_CODE: date(2026, 4, 3),
    }
    assert real[1].not_before == utc("2026-03-07T22:00:00")


def test_expected_rollout_moves_the_estimate() -> None:
    policy = CleanupPolicy(expected_rollout=timedelta(hours=72))
    rel = release(phase=ReleasePhase.STARTED, revision=None)
    assert cleanup.plan(rel, SUBJECT, policy)[0].due == date(2026, 4, 4)


@pytest.mark.parametrize(
    ("zone", "full_rollout", "flag_due", "contract_due"),
    [
        # 23:30Z on the 7th is 12:30 on the 8th in Auckland (NZDT, +13)
        ("Pacific/Auckland", "2026-03-07T23:30:00", date(2026, 4, 7), date(2026, 3, 22)),
        ("Europe/Berlin", "2026-03-07T23:30:00", date(2026, 4, 7), date(2026, 3, 22)),
        ("Asia/Kolkata", "2026-03-07T19:00:00", date(2026, 4, 7), date(2026, 3, 22)),
        ("UTC", "2026-03-07T23:30:00", date(2026, 4, 6), date(2026, 3, 21)),
        # 03:30Z on the 8th is still 22:30 on the 7th in New York (EST, -5)
        ("America/New_York", "2026-03-08T03:30:00", date(2026, 4, 6), date(2026, 3, 21)),
    ],
    ids=["auckland-ahead", "berlin-ahead", "kolkata-ahead", "utc", "new-york-behind"],
)
def test_due_dates_are_local_calendar_dates(
    zone: str, full_rollout: str, flag_due: date, contract_due: date
) -> None:
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc(full_rollout))
    assert dues(cleanup.plan(rel, SUBJECT, CleanupPolicy(timezone=zone))) == {
        K.REMOVE_RELEASE_FLAG: flag_due,
        K.CONTRACT_MIGRATION: contract_due,
        K.DELETE_LEGACY_CODE: flag_due,
    }


@pytest.mark.parametrize(
    ("zone", "full_rollout", "local_before", "local_after"),
    [
        # Berlin springs forward on 2026-03-29: 13:00 CET + 72 h = 14:00 CEST
        ("Europe/Berlin", "2026-03-27T12:00:00", "13:00", "14:00"),
        # New York falls back on 2026-11-01: 12:00 EDT + 72 h = 11:00 EST
        ("America/New_York", "2026-10-30T16:00:00", "12:00", "11:00"),
    ],
    ids=["berlin-spring-forward", "new-york-fall-back"],
)
def test_not_before_is_exact_elapsed_time_across_dst(
    zone: str, full_rollout: str, local_before: str, local_after: str
) -> None:
    full = utc(full_rollout)
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=full)
    contract = cleanup.plan(rel, SUBJECT, CleanupPolicy(timezone=zone))[1]
    assert contract.not_before is not None
    assert contract.not_before - full == timedelta(hours=72)
    assert contract.not_before.tzinfo is UTC
    assert full.astimezone(ZoneInfo(zone)).strftime("%H:%M") == local_before
    assert contract.not_before.astimezone(ZoneInfo(zone)).strftime("%H:%M") == local_after


def test_plan_keeps_the_dates_of_a_stopped_release() -> None:
    rel = release(phase=ReleasePhase.REVERTED, full_rollout_at=utc("2026-03-03T14:00:00"))
    assert cleanup.plan(rel, SUBJECT, CleanupPolicy())[0].due == date(2026, 4, 2)


# ── experiment winner ────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("full_rollout", "winner_at", "anchor", "due", "provisional"),
    [
        # winner before the estimated full rollout: counts from the estimate, provisional
        (None, "2026-03-02T15:00:00", "2026-03-03T10:00:00", date(2026, 3, 17), True),
        # winner after the estimate, full rollout still unseen: from the winner, provisional
        (None, "2026-03-04T08:00:00", "2026-03-04T08:00:00", date(2026, 3, 18), True),
        # winner before the real full rollout: from the full rollout
        (
            "2026-03-05T09:00:00",
            "2026-03-02T15:00:00",
            "2026-03-05T09:00:00",
            date(2026, 3, 19),
            False,
        ),
        # winner after the full rollout: from the winner
        (
            "2026-03-03T14:00:00",
            "2026-03-10T16:00:00",
            "2026-03-10T16:00:00",
            date(2026, 3, 24),
            False,
        ),
    ],
    ids=[
        "winner-before-estimate",
        "winner-after-estimate",
        "winner-before-full-rollout",
        "winner-after-full-rollout",
    ],
)
def test_experiment_clock_counts_from_the_later_of_winner_and_full_rollout(
    full_rollout: str | None, winner_at: str, anchor: str, due: date, provisional: bool
) -> None:
    rel = release(full_rollout_at=utc(full_rollout) if full_rollout else None)
    rel, events = cleanup.declare_winner(rel, "variant-b", utc(winner_at))
    assert events == [E.WINNER]
    experiment = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())[-1]
    assert experiment.kind is K.REMOVE_EXPERIMENT_FLAG
    assert (experiment.anchor, experiment.due, experiment.provisional) == (
        utc(anchor),
        due,
        provisional,
    )


def test_winner_declared_before_full_rollout_becomes_real_at_full_rollout() -> None:
    rel, _ = cleanup.declare_winner(release(), "variant-b", utc("2026-03-02T15:00:00"))
    rel, events = cleanup.advance(rel, obs(at="2026-03-05T09:00:00", promoted=True))
    assert events == [E.FULL_ROLLOUT]
    experiment = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())[-1]
    assert (experiment.anchor, experiment.due, experiment.provisional) == (
        utc("2026-03-05T09:00:00"),
        date(2026, 3, 19),
        False,
    )


def test_redeclaring_the_winner() -> None:
    first, _ = cleanup.declare_winner(release(), "variant-b", utc("2026-03-04T08:00:00"))
    same, events = cleanup.declare_winner(first, "variant-b", utc("2026-03-06T08:00:00"))
    assert (same, events) == (first, [])
    other, events = cleanup.declare_winner(first, "control", utc("2026-03-06T08:00:00"))
    assert events == [E.WINNER]
    assert (other.winner, other.winner_at) == ("control", utc("2026-03-06T08:00:00"))


# ── notices ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("zone", "reminder_day", "at"),
    [
        ("America/New_York", date(2026, 3, 7), "2026-03-07T14:30:00"),  # EST, -5
        ("America/New_York", date(2026, 3, 9), "2026-03-09T13:30:00"),  # EDT, -4
        ("America/New_York", date(2026, 10, 31), "2026-10-31T13:30:00"),  # EDT
        ("America/New_York", date(2026, 11, 2), "2026-11-02T14:30:00"),  # EST
        ("Europe/Berlin", date(2026, 3, 28), "2026-03-28T08:30:00"),  # CET, +1
        ("Europe/Berlin", date(2026, 3, 30), "2026-03-30T07:30:00"),  # CEST, +2
        ("Europe/Berlin", date(2026, 10, 24), "2026-10-24T07:30:00"),  # CEST
        ("Europe/Berlin", date(2026, 10, 26), "2026-10-26T08:30:00"),  # CET
        ("Pacific/Auckland", date(2026, 4, 4), "2026-04-03T20:30:00"),  # NZDT, +13
        ("Pacific/Auckland", date(2026, 4, 6), "2026-04-05T21:30:00"),  # NZST, +12
        ("Asia/Kolkata", date(2026, 3, 29), "2026-03-29T04:00:00"),  # IST, +5:30, no DST
        ("UTC", date(2026, 3, 29), "2026-03-29T09:30:00"),
    ],
    ids=[
        "new-york-before-march-change",
        "new-york-after-march-change",
        "new-york-before-november-change",
        "new-york-after-november-change",
        "berlin-before-march-change",
        "berlin-after-march-change",
        "berlin-before-october-change",
        "berlin-after-october-change",
        "auckland-before-april-change",
        "auckland-after-april-change",
        "kolkata",
        "utc",
    ],
)
def test_reminder_at_local_wall_time_across_dst(zone: str, reminder_day: date, at: str) -> None:
    policy = CleanupPolicy(timezone=zone)
    due = reminder_day + timedelta(days=2)
    now = utc("2026-01-01T00:00:00")
    found = cleanup.notices(release(), [ticket(due=due)], (), policy, now)
    reminder = next(n for n in found if n.kind == "reminder")
    assert reminder.at == utc(at)
    assert reminder.at.tzinfo is UTC
    assert reminder.at.astimezone(ZoneInfo(zone)).time() == time(9, 30)


@pytest.mark.parametrize(
    ("notify_at", "day", "at", "local"),
    [
        # 02:30 does not exist in Berlin on 2026-03-29: read with CET, i.e. 03:30 CEST
        (time(2, 30), date(2026, 3, 29), "2026-03-29T01:30:00", "03:30"),
        # 02:30 happens twice on 2026-10-25: the first (CEST) one
        (time(2, 30), date(2026, 10, 25), "2026-10-25T00:30:00", "02:30"),
        (time(2, 30, fold=1), date(2026, 10, 25), "2026-10-25T00:30:00", "02:30"),
    ],
    ids=["spring-forward-gap", "autumn-ambiguous", "autumn-ambiguous-fold-1-ignored"],
)
def test_notify_at_in_a_gap_or_ambiguous(notify_at: time, day: date, at: str, local: str) -> None:
    policy = CleanupPolicy(timezone="Europe/Berlin", notify_at=notify_at, reminder_days_before=0)
    found = cleanup.notices(release(), [ticket(due=day)], (), policy, utc("2026-01-01T00:00:00"))
    reminder = found[0]
    assert reminder.kind == "reminder"
    assert reminder.at == utc(at)
    assert reminder.at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == local


DUE = date(2026, 4, 2)
REM = f"{RID}:reminder:remove-release-flag:2026-04-02"


def esc(day: str) -> str:
    return f"{RID}:escalation:remove-release-flag:2026-04-02:{day}"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (
            "2026-03-20T00:00:00",
            [(REM, "2026-03-31T09:30:00"), (esc("2026-04-03"), "2026-04-03T09:30:00")],
        ),
        # the reminder was missed (downtime): still returned until the first escalation
        (
            "2026-04-03T09:29:59",
            [(REM, "2026-03-31T09:30:00"), (esc("2026-04-03"), "2026-04-03T09:30:00")],
        ),
        (
            "2026-04-03T09:30:00",
            [
                (esc("2026-04-03"), "2026-04-03T09:30:00"),
                (esc("2026-04-10"), "2026-04-10T09:30:00"),
            ],
        ),
        (
            "2026-04-10T09:29:00",
            [
                (esc("2026-04-03"), "2026-04-03T09:30:00"),
                (esc("2026-04-10"), "2026-04-10T09:30:00"),
            ],
        ),
        (
            "2026-04-10T09:30:00",
            [
                (esc("2026-04-10"), "2026-04-10T09:30:00"),
                (esc("2026-04-17"), "2026-04-17T09:30:00"),
            ],
        ),
        # down for weeks: the last missed escalation fires once, not all of them
        (
            "2026-05-01T00:00:00",
            [
                (esc("2026-04-24"), "2026-04-24T09:30:00"),
                (esc("2026-05-01"), "2026-05-01T09:30:00"),
            ],
        ),
    ],
    ids=[
        "before-reminder",
        "reminder-missed-still-sent",
        "at-first-escalation-reminder-superseded",
        "just-before-second-escalation",
        "at-second-escalation",
        "weeks-overdue",
    ],
)
def test_reminder_and_escalations(now: str, expected: list[tuple[str, str]]) -> None:
    found = cleanup.notices(release(), [ticket(due=DUE)], (), CleanupPolicy(), utc(now))
    assert [(n.id, n.at) for n in found] == [(i, utc(at)) for i, at in expected]
    assert all(n.due == DUE and n.ticket is K.REMOVE_RELEASE_FLAG for n in found)
    assert [n.kind for n in found] == [i.split(":")[1] for i, _ in expected]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-04-04T07:15:00", ["2026-03-28T08:30:00", "2026-04-04T07:30:00"]),
        ("2026-04-04T07:30:00", ["2026-04-04T07:30:00", "2026-04-11T07:30:00"]),
        ("2026-04-04T08:00:00", ["2026-04-04T07:30:00", "2026-04-11T07:30:00"]),
    ],
    ids=["before-second-after-dst", "at-second-after-dst", "after-second-after-dst"],
)
def test_escalations_stay_at_local_wall_time_across_dst(now: str, expected: list[str]) -> None:
    # due 2026-03-27 in Berlin: first escalation 03-28 09:30 CET, then 04-04 09:30 CEST
    policy = CleanupPolicy(timezone="Europe/Berlin")
    found = cleanup.notices(release(), [ticket(due=date(2026, 3, 27))], (), policy, utc(now))
    assert [n.at for n in found] == [utc(at) for at in expected]
    assert {n.kind for n in found} == {"escalation"}


def test_escalate_every_days() -> None:
    policy = CleanupPolicy(escalate_every_days=1)
    found = cleanup.notices(release(), [ticket(due=DUE)], (), policy, utc("2026-04-06T12:00:00"))
    assert shown(found) == [
        ("escalation", "2026-04-06T09:30:00+00:00"),
        ("escalation", "2026-04-07T09:30:00+00:00"),
    ]


def test_notices_for_a_planned_release_sorted_and_done_skipped() -> None:
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc("2026-03-03T14:00:00"))
    tickets = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())
    now = utc("2026-03-04T00:00:00")
    everything = cleanup.notices(rel, tickets, (), CleanupPolicy(), now)
    # the experiment ticket has no due date yet: no notices for it
    assert [(n.ticket, n.kind, n.at.date()) for n in everything] == [
        (K.CONTRACT_MIGRATION, "reminder", date(2026, 3, 15)),
        (K.CONTRACT_MIGRATION, "escalation", date(2026, 3, 18)),
        (K.DELETE_LEGACY_CODE, "reminder", date(2026, 3, 31)),
        (K.REMOVE_RELEASE_FLAG, "reminder", date(2026, 3, 31)),
        (K.DELETE_LEGACY_CODE, "escalation", date(2026, 4, 3)),
        (K.REMOVE_RELEASE_FLAG, "escalation", date(2026, 4, 3)),
    ]
    done = {K.REMOVE_RELEASE_FLAG, K.DELETE_LEGACY_CODE}
    left = cleanup.notices(rel, tickets, done, CleanupPolicy(), now)
    assert {n.ticket for n in left} == {K.CONTRACT_MIGRATION}


def test_provisional_tickets_get_notices_and_new_ids_when_the_date_becomes_real() -> None:
    rel = release()
    provisional = cleanup.plan(rel, SUBJECT, CleanupPolicy())
    assert provisional[0].provisional
    now = utc("2026-03-04T00:00:00")
    before = {n.id for n in cleanup.notices(rel, provisional, (), CleanupPolicy(), now)}
    assert f"{RID}:reminder:remove-release-flag:2026-04-02" in before
    rel, _ = cleanup.advance(rel, obs(at="2026-03-05T09:00:00", promoted=True))
    real = cleanup.plan(rel, SUBJECT, CleanupPolicy())
    after = {n.id for n in cleanup.notices(rel, real, (), CleanupPolicy(), now)}
    assert f"{RID}:reminder:remove-release-flag:2026-04-04" in after
    assert not before & after


@pytest.mark.parametrize(
    "phase", [ReleasePhase.ABORTED, ReleasePhase.REVERTED], ids=["aborted", "reverted"]
)
def test_stopped_clocks_give_no_notices(phase: ReleasePhase) -> None:
    rel = release(phase=phase, full_rollout_at=utc("2026-03-03T14:00:00"))
    tickets = cleanup.plan(rel, SUBJECT, CleanupPolicy())
    assert all(t.due is not None for t in tickets)
    for now in ("2026-03-04T00:00:00", "2026-04-20T00:00:00"):
        assert cleanup.notices(rel, tickets, (), CleanupPolicy(), utc(now)) == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        cleanup.notices(release(), [ticket(due=DUE)], (), CleanupPolicy(), datetime(2026, 4, 1))


# ── the release's life ───────────────────────────────────────────────────────────────────


def test_abort_stops_notices_then_retry_restarts_from_the_retry() -> None:
    policy = CleanupPolicy()
    now = utc("2026-03-04T00:00:00")
    rel = release(phase=ReleasePhase.STARTED, revision=None, previous_version=None)
    rel, events = cleanup.advance(rel, obs(at="2026-03-02T10:05:00"))
    assert events == [E.BOUND, E.PROGRESSING]
    assert rel.previous_version == "1.12.4"

    rel, events = cleanup.advance(rel, obs(at="2026-03-02T12:00:00", aborted=True))
    assert events == [E.ABORTED]
    assert (rel.phase, rel.stopped_at) == (ReleasePhase.ABORTED, utc("2026-03-02T12:00:00"))
    tickets = cleanup.plan(rel, SUBJECT, policy)
    assert tickets[0].due == date(2026, 4, 2)  # still shown
    assert cleanup.notices(rel, tickets, (), policy, now) == []

    rel, events = cleanup.advance(rel, obs(at="2026-03-05T08:00:00"))
    assert events == [E.RETRIED]
    assert (rel.phase, rel.clock_started_at, rel.stopped_at, rel.full_rollout_at) == (
        ReleasePhase.PROGRESSING,
        utc("2026-03-05T08:00:00"),
        None,
        None,
    )
    tickets = cleanup.plan(rel, SUBJECT, policy)
    assert tickets[0].provisional
    assert tickets[0].anchor == utc("2026-03-06T08:00:00")
    assert tickets[0].due == date(2026, 4, 5)
    assert cleanup.notices(rel, tickets, (), policy, now) != []

    rel, events = cleanup.advance(rel, obs(at="2026-03-06T20:00:00", promoted=True))
    assert events == [E.FULL_ROLLOUT]
    tickets = cleanup.plan(rel, SUBJECT, policy)
    assert not tickets[0].provisional
    assert tickets[1].not_before == utc("2026-03-09T20:00:00")


def test_revert_is_seen_through_the_previous_version() -> None:
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc("2026-03-03T14:00:00"))
    revert = obs(8, "1.12.4", at="2026-03-10T11:00:00", stable="1.13.0", promoted=True)
    reverted, events = cleanup.advance(rel, revert)
    assert events == [E.REVERTED]
    assert (reverted.phase, reverted.stopped_at) == (
        ReleasePhase.REVERTED,
        utc("2026-03-10T11:00:00"),
    )
    tickets = cleanup.plan(reverted, SUBJECT, CleanupPolicy())
    assert cleanup.notices(reverted, tickets, (), CleanupPolicy(), utc("2026-03-31T10:00")) == []
    assert cleanup.advance(reverted, revert) == (reverted, [])


def test_the_next_release_does_not_stop_the_clocks() -> None:
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc("2026-03-03T14:00:00"))
    after, events = cleanup.advance(rel, obs(8, "1.14.0", at="2026-03-10T11:00:00"))
    assert (after, events) == (rel, [])
    tickets = cleanup.plan(after, SUBJECT, CleanupPolicy())
    assert cleanup.notices(after, tickets, (), CleanupPolicy(), utc("2026-03-31T10:00")) != []


UNBOUND = {"phase": ReleasePhase.STARTED, "revision": None, "previous_version": None}
FULL = {"phase": ReleasePhase.FULLY_ROLLED_OUT, "full_rollout_at": utc("2026-03-03T14:00:00")}
AT = utc("2026-03-02T10:05:00")


@pytest.mark.parametrize(
    ("start", "observation", "events", "changes"),
    [
        (UNBOUND, obs(version="1.12.4"), [], {}),
        (UNBOUND, obs(version=None), [], {}),
        (
            UNBOUND,
            obs(),
            [E.BOUND, E.PROGRESSING],
            {"revision": 7, "previous_version": "1.12.4", "phase": ReleasePhase.PROGRESSING},
        ),
        # restarting the same version: the stable one is not a revert target
        (
            UNBOUND,
            obs(stable="1.13.0"),
            [E.BOUND, E.PROGRESSING],
            {"revision": 7, "phase": ReleasePhase.PROGRESSING},
        ),
        (UNBOUND, obs(stable=None), [E.BOUND, E.PROGRESSING], {"revision": 7, "phase": "p"}),
        (
            UNBOUND,
            obs(promoted=True),
            [E.BOUND, E.FULL_ROLLOUT],
            {
                "revision": 7,
                "previous_version": "1.12.4",
                "phase": ReleasePhase.FULLY_ROLLED_OUT,
                "full_rollout_at": AT,
            },
        ),
        (
            UNBOUND,
            obs(aborted=True),
            [E.BOUND, E.ABORTED],
            {
                "revision": 7,
                "previous_version": "1.12.4",
                "phase": ReleasePhase.ABORTED,
                "stopped_at": AT,
            },
        ),
        ({"phase": ReleasePhase.STARTED}, obs(), [E.PROGRESSING], {"phase": "p"}),
        ({}, obs(), [], {}),
        ({}, obs(aborted=True), [E.ABORTED], {"phase": ReleasePhase.ABORTED, "stopped_at": AT}),
        ({"phase": ReleasePhase.ABORTED, "stopped_at": AT}, obs(aborted=True), [], {}),
        (
            {"phase": ReleasePhase.ABORTED, "stopped_at": AT},
            obs(at="2026-03-03T08:00:00"),
            [E.RETRIED],
            {"phase": "p", "clock_started_at": utc("2026-03-03T08:00:00"), "stopped_at": None},
        ),
        (
            {**FULL, "phase": ReleasePhase.ABORTED, "stopped_at": AT},
            obs(at="2026-03-03T08:00:00", promoted=True),
            [E.RETRIED, E.FULL_ROLLOUT],
            {
                "phase": ReleasePhase.FULLY_ROLLED_OUT,
                "clock_started_at": utc("2026-03-03T08:00:00"),
                "stopped_at": None,
                "full_rollout_at": utc("2026-03-03T08:00:00"),
            },
        ),
        (
            {},
            obs(promoted=True),
            [E.FULL_ROLLOUT],
            {"phase": ReleasePhase.FULLY_ROLLED_OUT, "full_rollout_at": AT},
        ),
        (FULL, obs(promoted=True), [], {}),
        (FULL, obs(promoted=False), [], {}),
        (FULL, obs(aborted=True), [E.ABORTED], {"phase": ReleasePhase.ABORTED, "stopped_at": AT}),
        ({}, obs(6, "1.12.4"), [], {}),
        ({}, obs(6, "1.13.0", promoted=True), [], {}),
        (
            FULL,
            obs(8, "1.12.4"),
            [E.REVERTED],
            {"phase": ReleasePhase.REVERTED, "stopped_at": AT},
        ),
        # aborted, then reverted in Git: the clocks stopped at the abort
        (
            {"phase": ReleasePhase.ABORTED, "stopped_at": utc("2026-03-02T09:00:00")},
            obs(8, "1.12.4"),
            [E.REVERTED],
            {"phase": ReleasePhase.REVERTED},
        ),
        ({"phase": ReleasePhase.REVERTED, "stopped_at": AT}, obs(9, "1.12.4"), [], {}),
        # a late observation of its own revision does not undo the revert
        ({"phase": ReleasePhase.REVERTED, "stopped_at": AT}, obs(promoted=True), [], {}),
        ({"previous_version": None}, obs(8, "1.12.4"), [], {}),
        ({}, obs(8, "1.14.0"), [], {}),
    ],
    ids=[
        "unbound-other-version",
        "unbound-no-version",
        "bind-started-progressing",
        "bind-same-stable-no-revert-target",
        "bind-stable-unknown",
        "bind-already-promoted",
        "bind-already-aborted",
        "started-progressing",
        "progressing-again",
        "abort",
        "abort-again",
        "retry",
        "retry-and-promoted",
        "full-rollout",
        "full-rollout-again",
        "fully-rolled-out-not-promoted-now",
        "abort-after-full-rollout",
        "older-revision",
        "older-revision-promoted",
        "revert",
        "revert-after-abort-keeps-stop",
        "reverted-again",
        "reverted-late-own-revision",
        "newer-without-revert-target",
        "next-release",
    ],
)
def test_advance(
    start: dict[str, object],
    observation: RolloutObservation,
    events: list[ReleaseEvent],
    changes: dict[str, object],
) -> None:
    before = release(**start)
    if changes.get("phase") == "p":
        changes = {**changes, "phase": ReleasePhase.PROGRESSING}
    after, got = cleanup.advance(before, observation)
    assert got == events
    assert after == replace(before, **changes)  # type: ignore[arg-type]
    assert cleanup.advance(after, observation) == (after, [])


# ── contract_wait ────────────────────────────────────────────────────────────────────────

ROLLED_OUT = release(
    phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc("2026-03-27T12:00:00")
)


@pytest.mark.parametrize(
    ("rel", "at", "wait"),
    [
        (ROLLED_OUT, utc("2026-03-27T12:00:00"), timedelta(hours=72)),
        (ROLLED_OUT, utc("2026-03-30T11:59:00"), timedelta(minutes=1)),
        (ROLLED_OUT, utc("2026-03-30T12:00:00"), None),
        (ROLLED_OUT, datetime.fromisoformat("2026-03-30T14:00:00+02:00"), None),
        (ROLLED_OUT, utc("2026-04-10T00:00:00"), None),
        (release(), utc("2026-04-10T00:00:00"), timedelta(hours=72)),
        (replace(ROLLED_OUT, phase=ReleasePhase.REVERTED), utc("2026-04-10"), timedelta(hours=72)),
        (replace(ROLLED_OUT, phase=ReleasePhase.ABORTED), utc("2026-04-10"), timedelta(hours=72)),
    ],
    ids=[
        "at-full-rollout",
        "one-minute-before-72h",
        "at-72h-across-dst",
        "at-72h-other-offset",
        "well-after",
        "full-rollout-unknown",
        "reverted",
        "aborted",
    ],
)
def test_contract_wait(rel: Release, at: datetime, wait: timedelta | None) -> None:
    assert cleanup.contract_wait(rel, at, CleanupPolicy(timezone="Europe/Berlin")) == wait


# ── names ────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry.example.com/payments/payment-router:1.13.0", "1.13.0"),
        ("payment-router:1.13.0", "1.13.0"),
        ("host:5000/img", None),
        ("host:5000/team/img:2.0.1", "2.0.1"),
        ("img@sha256:" + "a" * 64, None),
        ("img:1.2@sha256:" + "b" * 64, "1.2"),
        ("img", None),
        ("img:", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "registry-path",
        "plain",
        "port-is-not-a-tag",
        "port-and-tag",
        "digest-only",
        "tag-and-digest",
        "no-tag",
        "empty-tag",
        "empty",
        "none",
    ],
)
def test_image_version(image: str | None, version: str | None) -> None:
    assert cleanup.image_version(image) == version


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("payment-router", "payment-router"),
        ("Payment Router", "payment-router"),
        ("1.13.0-rc.1+build 5", "1.13.0-rc.1-build-5"),
        ("  spaced  out  ", "spaced-out"),
        ("snake_case.ok", "snake_case.ok"),
        ("--Ünïcode--", "n-code"),
        ("???", ""),
    ],
    ids=["kept", "space", "semver-build", "edges", "underscore-dot", "non-ascii", "nothing-left"],
)
def test_slug(text: str, expected: str) -> None:
    assert cleanup.slug(text) == expected


def test_ids_and_labels() -> None:
    assert cleanup.release_id("payment-router", "1.13.0") == RID
    rel = release(service="Payment Router", version="1.13.0 RC")
    assert cleanup.release_label(rel) == "rollbot-payment-router-1.13.0-rc"
    assert cleanup.ticket_label(rel, K.CONTRACT_MIGRATION) == (
        "rollbot-payment-router-1.13.0-rc-contract-migration"
    )
    assert " " not in cleanup.ticket_label(rel, K.REMOVE_EXPERIMENT_FLAG)


@given(st.text())
def test_slug_is_a_valid_label(text: str) -> None:
    out = cleanup.slug(text)
    assert set(out) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-")
    assert not out.startswith("-") and not out.endswith("-")
    assert cleanup.slug(out) == out


# ── describe ─────────────────────────────────────────────────────────────────────────────

LINKS = {
    "Rollout": "https://argo.example.com/rollouts/payments/payment-router",
    "Runbook": "https://wiki.example.com/payments/rollback",
    "Release thread": "https://example.slack.com/archives/C1/p1700000000000100",
}


def test_describe_provisional_contract_ticket() -> None:
    rel = release(clock_started_at=utc("2026-03-27T12:00:00"))
    policy = CleanupPolicy(timezone="Europe/Berlin")
    contract = cleanup.plan(rel, SUBJECT, policy)[1]
    text = cleanup.describe(contract, rel, SUBJECT, policy, LINKS)
    assert "expand-contract" in text.lower()
    assert "rollback to 1.12.4" in text
    assert (
        "*Due:* 2026-04-11 (provisional: full rollout not seen yet, estimated from the "
        "expected rollout of 24 h)"
    ) in text
    # estimate 2026-03-28T12:00Z + 72 h = 2026-03-31T12:00Z = 14:00 CEST
    assert "*Not before:* 2026-03-31 14:00 CEST (Europe/Berlin; 2026-03-31 12:00 UTC)" in text
    assert "* [Rollout|https://argo.example.com/rollouts/payments/payment-router]" in text
    assert "* [Runbook|https://wiki.example.com/payments/rollback]" in text
    assert "* [Release thread|https://example.slack.com/archives/C1/p1700000000000100]" in text
    assert text.splitlines()[-1] == (
        "Filed by rollbot for release payment-router@1.13.0. "
        "Label: {{rollbot-payment-router-1.13.0-contract-migration}}"
    )


def test_describe_real_flag_ticket() -> None:
    rel = release(phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=utc("2026-03-03T14:00:00"))
    flag = cleanup.plan(rel, SUBJECT, CleanupPolicy())[0]
    text = cleanup.describe(flag, rel, SUBJECT, CleanupPolicy(), {"Pipe|Title": "https://x"})
    assert "{{payments.new-router.enabled}}" in text
    assert "Flag debt" in text
    assert "*Due:* 2026-04-02" in text
    assert "provisional" not in text
    assert "Not before" not in text
    assert "* [Pipe\\|Title|https://x]" in text


def test_describe_experiment_ticket_without_and_with_a_winner() -> None:
    rel = release(full_rollout_at=utc("2026-03-03T14:00:00"))
    experiment = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())[-1]
    text = cleanup.describe(experiment, rel, WITH_EXPERIMENT, CleanupPolicy(), {})
    assert "*Due:* 14 days after a winner is declared (no winner yet)" in text
    assert "*Links*" not in text
    rel, _ = cleanup.declare_winner(rel, "variant-b", utc("2026-03-10T16:00:00"))
    experiment = cleanup.plan(rel, WITH_EXPERIMENT, CleanupPolicy())[-1]
    text = cleanup.describe(experiment, rel, WITH_EXPERIMENT, CleanupPolicy(), {})
    assert "Winner: {{variant-b}}, declared 2026-03-10 16:00 UTC." in text
    assert "*Due:* 2026-03-24" in text


def test_describe_legacy_ticket() -> None:
    rel = release()
    legacy = cleanup.plan(rel, SUBJECT, CleanupPolicy())[2]
    text = cleanup.describe(legacy, rel, SUBJECT, CleanupPolicy(), LINKS)
    assert "Delete the legacy routing code that payment-router 1.13.0 replaced." in text


# ── policy ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "'Mars/Olympus_Mons'"),
        ({"timezone": "Europe/berlin "}, "unknown time zone"),
        ({"timezone": ""}, "unknown time zone"),
        ({"timezone": "../etc/passwd"}, "unknown time zone"),
        ({"flag_removal_days": 0}, "flag_removal_days must be at least 1"),
        ({"contract_due_days": 0}, "contract_due_days must be at least 1"),
        ({"experiment_removal_days": -1}, "experiment_removal_days must be at least 1"),
        ({"escalate_every_days": 0}, "escalate_every_days must be at least 1"),
        ({"reminder_days_before": -1}, "reminder_days_before must not be negative"),
        ({"expected_rollout": timedelta(hours=-1)}, "expected_rollout"),
        ({"contract_due_days": 2}, "falls before contract_not_before"),
        ({"notify_at": time(9, 30, tzinfo=UTC)}, "without tzinfo"),
    ],
    ids=[
        "unknown-zone",
        "zone-with-space",
        "empty-zone",
        "path-as-zone",
        "flag-days-zero",
        "contract-days-zero",
        "experiment-days-negative",
        "escalate-every-zero",
        "reminder-negative",
        "negative-expected-rollout",
        "contract-due-before-not-before",
        "aware-notify-at",
    ],
)
def test_policy_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        CleanupPolicy(**changes)  # type: ignore[arg-type]


def test_policy_edges_accepted() -> None:
    policy = CleanupPolicy(contract_due_days=3, reminder_days_before=0, timezone="Asia/Kolkata")
    assert policy.zone == ZoneInfo("Asia/Kolkata")


# ── properties ───────────────────────────────────────────────────────────────────────────

ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Pacific/Auckland",
        "Asia/Kolkata",
        "Australia/Lord_Howe",  # 30-minute DST
        "America/Santiago",  # changes at midnight
        "Pacific/Chatham",  # +12:45 / +13:45
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
NOTIFY_AT = st.times().map(lambda t: t.replace(microsecond=0))


@given(
    anchor=INSTANTS,
    zone=ZONES,
    notify_at=NOTIFY_AT,
    reminder_days_before=st.integers(0, 10),
    experiment=st.booleans(),
)
def test_reminders_land_on_the_local_day_at_notify_at(
    anchor: datetime, zone: str, notify_at: time, reminder_days_before: int, experiment: bool
) -> None:
    policy = CleanupPolicy(
        timezone=zone, notify_at=notify_at, reminder_days_before=reminder_days_before
    )
    rel = release(
        full_rollout_at=anchor,
        winner="b" if experiment else None,
        winner_at=anchor if experiment else None,
    )
    tickets = cleanup.plan(rel, WITH_EXPERIMENT, policy)
    found = cleanup.notices(rel, tickets, (), policy, anchor)
    tz = ZoneInfo(zone)
    assert found == sorted(found, key=lambda n: (n.at, n.id))
    assert len([n for n in found if n.kind == "reminder"]) == (4 if experiment else 3)
    for notice in found:
        assert notice.at.tzinfo is UTC
        assert notice.at > anchor
        wanted = notice.due - timedelta(days=reminder_days_before)
        if notice.kind == "escalation":
            wanted = notice.due + timedelta(days=1)
        naive = datetime.combine(wanted, notify_at)
        local = notice.at.astimezone(tz)
        exists = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if exists == naive:
            assert local.date() == wanted
            assert local.time() == notify_at
        else:  # in the spring-forward gap: a real instant, later by the gap
            assert timedelta(0) < local.replace(tzinfo=None) - naive <= timedelta(hours=1)


@given(
    due=st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)),
    offset=st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta(days=200)),
    zone=ZONES,
    notify_at=NOTIFY_AT,
    every=st.integers(1, 10),
)
def test_escalations_bracket_now(
    due: date, offset: timedelta, zone: str, notify_at: time, every: int
) -> None:
    policy = CleanupPolicy(timezone=zone, notify_at=notify_at, escalate_every_days=every)
    now = datetime.combine(due, time(), tzinfo=UTC) + offset
    found = cleanup.notices(release(), [ticket(due=due)], (), policy, now)
    escalations = [n.at for n in found if n.kind == "escalation"]
    reminders = [n for n in found if n.kind == "reminder"]
    if len(escalations) == 1:
        assert now < escalations[0]
        assert len(reminders) == 1
    else:
        assert len(escalations) == 2
        last, upcoming = escalations
        assert last <= now < upcoming
        assert reminders == []
        local_days = (upcoming.astimezone(ZoneInfo(zone)).date() - due).days - 1
        assert local_days % every == 0


PHASES = st.sampled_from(list(ReleasePhase))
OPT_INSTANT = st.none() | INSTANTS
VERSIONS = st.sampled_from(["1.12.4", "1.13.0", "1.14.0"])


@given(
    phase=PHASES,
    revision=st.none() | st.integers(5, 9),
    previous=st.none() | VERSIONS,
    full_rollout_at=OPT_INSTANT,
    stopped_at=OPT_INSTANT,
    observation=st.builds(
        RolloutObservation,
        revision=st.integers(5, 9),
        version=st.none() | VERSIONS,
        stable_version=st.none() | VERSIONS,
        fully_promoted=st.booleans(),
        aborted=st.booleans(),
        at=INSTANTS,
    ),
)
def test_advance_is_idempotent(
    phase: ReleasePhase,
    revision: int | None,
    previous: str | None,
    full_rollout_at: datetime | None,
    stopped_at: datetime | None,
    observation: RolloutObservation,
) -> None:
    before = release(
        phase=phase,
        revision=revision,
        previous_version=previous,
        full_rollout_at=full_rollout_at,
        stopped_at=stopped_at,
    )
    after, events = cleanup.advance(before, observation)
    assert (after == before) == (events == [])
    assert cleanup.advance(after, observation) == (after, [])
