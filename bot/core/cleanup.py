"""The cleanup debt every release leaves behind: its Jira tickets, their dates, and the nudges.

At release start rollbot files one ticket per kind of debt (`TicketKind`):

1. remove the release flag — due `flag_removal_days` (30) after full rollout;
2. apply the contract step of the expand-contract migration (the NOT NULL constraint) — not
   before `contract_not_before` (72 h, exact elapsed time) after full rollout, so that an
   emergency rollback cannot break the column contract; due `contract_due_days` (14) after it;
3. delete the legacy code path — due with the flag removal;
4. only when the service has an experiment flag: remove it — due `experiment_removal_days`
   (14) after the LATER of the winner declaration and the full rollout (the flag cannot go
   while the release still rolls out); no winner yet, no due date.

Full rollout is unknown when the tickets are filed, so until the Rollout is seen fully
promoted the dates are provisional, counted from an estimate (`clock_started_at +
expected_rollout`). An abort or a revert stops the clocks: the tickets keep the dates their
facts give, but nobody is nudged; a retry restarts the clocks from the retry.

Dates are calendar dates in the policy's IANA zone (Jira due dates have no time), so a DST
change never moves them. Reminders and escalations go out at `notify_at` local wall time;
every instant returned is timezone-aware UTC.

Pure: no I/O, no clock (`now` and every observation's time are passed in).

    plan(release, subject, policy)                  -> list[PlannedTicket]
    notices(release, tickets, done, policy, now)    -> list[Notice]   (reminders, escalations)
    contract_wait(release, at, policy)              -> timedelta | None (None: allowed now)
    advance(release, observation)                   -> (Release, [ReleaseEvent])
    declare_winner(release, variant, at)            -> (Release, [ReleaseEvent])
    describe(ticket, release, subject, policy, links) -> str          (Jira wiki markup)
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.model import Release, ReleasePhase, TicketKind

REMINDER = "reminder"
ESCALATION = "escalation"


# ── policy and the words of the tickets ──────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    """When the cleanup tickets fall due and when their owners are nudged.

    Every `*_days` is in calendar days of `timezone`; `expected_rollout` and
    `contract_not_before` are elapsed time.
    """

    timezone: str = "UTC"
    """IANA zone the due dates and the notification wall time are read in."""
    expected_rollout: timedelta = timedelta(hours=24)
    """How long a release usually takes to reach 100 %; provisional dates count from
    `clock_started_at` plus this until the full rollout is seen."""
    flag_removal_days: int = 30
    """Release flag (and the legacy code path) due this many days after full rollout."""
    contract_not_before: timedelta = timedelta(hours=72)
    """The contract step must not ship sooner than this after full rollout, so an emergency
    rollback to the previous version does not break the column contract."""
    contract_due_days: int = 14
    """Contract step due this many days after full rollout."""
    experiment_removal_days: int = 14
    """Experiment flag due this many days after the winner (or the full rollout, if later)."""
    reminder_days_before: int = 2
    """The owner is reminded this many days before the due date (0: on the due date)."""
    notify_at: time = time(9, 30)
    """Local wall time (naive) reminders and escalations go out at."""
    escalate_every_days: int = 7
    """An overdue ticket escalates the day after its due date, then every this many days."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}: use an IANA name") from None
        for name in (
            "flag_removal_days",
            "contract_due_days",
            "experiment_removal_days",
            "escalate_every_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.reminder_days_before < 0:
            raise ValueError(
                f"reminder_days_before must not be negative, got {self.reminder_days_before}"
            )
        if self.expected_rollout < timedelta(0):
            raise ValueError(f"expected_rollout must not be negative, got {self.expected_rollout}")
        if self.contract_not_before < timedelta(0):
            raise ValueError(
                f"contract_not_before must not be negative, got {self.contract_not_before}"
            )
        if timedelta(days=self.contract_due_days) < self.contract_not_before:
            raise ValueError(
                f"contract_due_days ({self.contract_due_days}) falls before "
                f"contract_not_before ({_hours(self.contract_not_before)} h)"
            )
        if self.notify_at.tzinfo is not None:
            raise ValueError("notify_at is a local wall time: give it without tzinfo")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class CleanupSubject:
    """What the tickets talk about (from the service catalog)."""

    release_flag: str | None
    experiment_flag: str | None = None
    legacy_code: str = "legacy code path"  # "legacy routing code" for payment-router
    contract_step: str = "NOT NULL constraint"


@dataclass(frozen=True, slots=True)
class PlannedTicket:
    """One cleanup ticket of a release, with the dates its facts give now."""

    kind: TicketKind
    summary: str
    label: str  # ticket_label(release, kind)
    due: date | None  # None: its clock has not started (no winner yet)
    not_before: datetime | None  # contract ticket only
    provisional: bool  # the full rollout was not seen yet: dates count from the estimate
    anchor: datetime | None  # instant its clock counts from


@dataclass(frozen=True, slots=True)
class Notice:
    """A nudge to a ticket's owner; callers send each `id` once."""

    id: str
    kind: str  # reminder | escalation
    ticket: TicketKind
    due: date
    at: datetime  # UTC


@dataclass(frozen=True, slots=True)
class RolloutObservation:
    """What the Rollout watch saw, as far as releases care."""

    revision: int
    version: str | None  # image tag of the pod template's first container (image_version())
    stable_version: str | None  # image tag of the stable ReplicaSet, when known
    fully_promoted: bool  # currentPodHash == stableRS and phase Healthy
    aborted: bool
    at: datetime


class ReleaseEvent(enum.StrEnum):
    """What `advance` and `declare_winner` changed, for the release thread and the audit."""

    BOUND = "bound"
    PROGRESSING = "progressing"
    FULL_ROLLOUT = "full-rollout"
    ABORTED = "aborted"
    RETRIED = "retried"
    REVERTED = "reverted"
    WINNER = "winner"


# ── names and labels ─────────────────────────────────────────────────────────────────────

_NOT_LABEL = re.compile(r"[^a-z0-9._-]+")


def release_id(service: str, version: str) -> str:
    """ "payment-router@1.13.0"."""
    return f"{service}@{version}"


def slug(text: str) -> str:
    """Lowercase, `[a-z0-9._-]` kept, any other run → "-"; Jira labels cannot hold spaces."""
    return _NOT_LABEL.sub("-", text.lower()).strip("-")


def release_label(release: Release) -> str:
    return f"rollbot-{slug(release.service)}-{slug(release.version)}"


def ticket_label(release: Release, kind: TicketKind) -> str:
    return f"{release_label(release)}-{kind.value}"


def image_version(image: str | None) -> str | None:
    """The tag of an image reference, or None when it has none.

    "registry/x/payment-router:1.13.0" → "1.13.0"; "host:5000/img" → None (a port is not a
    tag); "img@sha256:…" → None; "img:1.2@sha256:…" → "1.2".
    """
    if not image:
        return None
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    tag = last.rsplit(":", 1)[1]
    return tag or None


# ── time ─────────────────────────────────────────────────────────────────────────────────


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: give it a time zone")
    return at.astimezone(UTC)


def _local_date(at: datetime, policy: CleanupPolicy) -> date:
    return _utc(at).astimezone(policy.zone).date()


def _local_instant(day: date, policy: CleanupPolicy) -> datetime:
    """`notify_at` on `day` in the policy's zone, as UTC.

    An ambiguous wall time (autumn) takes its first occurrence (fold=0); one in the
    spring-forward gap is read with the offset before the change, which the UTC round trip
    turns into a real instant (02:30 Berlin on the change day → 01:30Z, i.e. 03:30 CEST).
    """
    local = datetime.combine(day, policy.notify_at.replace(fold=0), tzinfo=policy.zone)
    return local.astimezone(UTC)


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return str(int(hours)) if hours.is_integer() else f"{hours:g}"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def estimated_full_rollout(release: Release, policy: CleanupPolicy) -> datetime:
    """The full rollout the clocks count from, in UTC: the real one once seen, else the
    estimate `clock_started_at + expected_rollout`."""
    if release.full_rollout_at is not None:
        return _utc(release.full_rollout_at)
    return _utc(release.clock_started_at) + policy.expected_rollout


# ── the tickets ──────────────────────────────────────────────────────────────────────────


def _summary(kind: TicketKind, release: Release, subject: CleanupSubject) -> str:
    what = f"{release.service} {release.version}"
    if kind is TicketKind.REMOVE_RELEASE_FLAG:
        if subject.release_flag is None:
            return f"Remove the release flag of {release.service} ({what})"
        return f"Remove release flag {subject.release_flag} ({what})"
    if kind is TicketKind.CONTRACT_MIGRATION:
        return f"Apply the {subject.contract_step} (contract step) for {what}"
    if kind is TicketKind.DELETE_LEGACY_CODE:
        return f"Delete the {subject.legacy_code} ({what})"
    return f"Remove experiment flag {subject.experiment_flag} ({what})"


def plan(release: Release, subject: CleanupSubject, policy: CleanupPolicy) -> list[PlannedTicket]:
    """The release's cleanup tickets, in `TicketKind` order, with the dates its facts give.

    A stopped release (aborted, reverted) still gets its dates, so they can be shown;
    `notices` is what stays quiet.
    """
    rollout = estimated_full_rollout(release, policy)
    provisional = release.full_rollout_at is None
    rollout_day = _local_date(rollout, policy)
    flag_due = rollout_day + timedelta(days=policy.flag_removal_days)

    def ticket(
        kind: TicketKind,
        due: date | None,
        anchor: datetime | None,
        not_before: datetime | None = None,
    ) -> PlannedTicket:
        return PlannedTicket(
            kind=kind,
            summary=_summary(kind, release, subject),
            label=ticket_label(release, kind),
            due=due,
            not_before=not_before,
            provisional=provisional,
            anchor=anchor,
        )

    tickets = [
        ticket(TicketKind.REMOVE_RELEASE_FLAG, flag_due, rollout),
        ticket(
            TicketKind.CONTRACT_MIGRATION,
            rollout_day + timedelta(days=policy.contract_due_days),
            rollout,
            not_before=rollout + policy.contract_not_before,
        ),
        ticket(TicketKind.DELETE_LEGACY_CODE, flag_due, rollout),
    ]
    if subject.experiment_flag:
        if release.winner_at is None:
            tickets.append(ticket(TicketKind.REMOVE_EXPERIMENT_FLAG, None, None))
        else:
            anchor = max(_utc(release.winner_at), rollout)
            due = _local_date(anchor, policy) + timedelta(days=policy.experiment_removal_days)
            tickets.append(ticket(TicketKind.REMOVE_EXPERIMENT_FLAG, due, anchor))
    return tickets


# ── reminders and escalations ────────────────────────────────────────────────────────────


def _escalation(due: date, k: int, policy: CleanupPolicy) -> datetime:
    """The k-th escalation (k >= 0): the day after `due`, then every `escalate_every_days`."""
    day = due + timedelta(days=1 + k * policy.escalate_every_days)
    return _local_instant(day, policy)


def _ticket_notices(
    release: Release, ticket: PlannedTicket, due: date, policy: CleanupPolicy, now: datetime
) -> list[Notice]:
    base = f"{release.id}:{{kind}}:{ticket.kind.value}:{due.isoformat()}"
    first = _escalation(due, 0, policy)
    if now < first:
        reminder_day = due - timedelta(days=policy.reminder_days_before)
        return [
            Notice(
                id=base.format(kind=REMINDER),
                kind=REMINDER,
                ticket=ticket.kind,
                due=due,
                at=_local_instant(reminder_day, policy),
            ),
            Notice(
                id=f"{base.format(kind=ESCALATION)}:{first.date().isoformat()}",
                kind=ESCALATION,
                ticket=ticket.kind,
                due=due,
                at=first,
            ),
        ]
    # Occurrences are local calendar days apart; start from the day count and correct for
    # the hour a DST change (or a notify_at before the change) can put on either side.
    elapsed = (now.astimezone(policy.zone).date() - (due + timedelta(days=1))).days
    k = max(0, elapsed // policy.escalate_every_days)
    while k > 0 and _escalation(due, k, policy) > now:
        k -= 1
    while _escalation(due, k + 1, policy) <= now:
        k += 1
    return [
        Notice(
            id=f"{base.format(kind=ESCALATION)}:{at.date().isoformat()}",
            kind=ESCALATION,
            ticket=ticket.kind,
            due=due,
            at=at,
        )
        for at in (_escalation(due, k, policy), _escalation(due, k + 1, policy))
    ]


def notices(
    release: Release,
    tickets: Sequence[PlannedTicket],
    done: Collection[TicketKind],
    policy: CleanupPolicy,
    now: datetime,
) -> list[Notice]:
    """The nudges due around `now`, sorted by (at, id); callers send each id once.

    Per open ticket with a due date: a reminder at `notify_at` on `due - reminder_days_before`
    (returned even when past, so one missed during downtime still goes out, until the first
    escalation supersedes it); escalations at `notify_at` on `due + 1`, then every
    `escalate_every_days`: the last one at or before `now` and the next one after it. Nothing
    while the release's clocks are stopped.
    """
    if not release.phase.clock_running:
        return []
    now = _utc(now)
    found: list[Notice] = []
    for ticket in tickets:
        if ticket.kind in done or ticket.due is None:
            continue
        found.extend(_ticket_notices(release, ticket, ticket.due, policy, now))
    return sorted(found, key=lambda notice: (notice.at, notice.id))


def contract_wait(release: Release, at: datetime, policy: CleanupPolicy) -> timedelta | None:
    """None when the contract step may ship at `at`; else how long it must still wait.

    Full rollout not seen yet, or the clocks stopped (aborted, reverted: the previous version
    may be serving again and still needs the expanded schema): the whole `contract_not_before`.
    """
    if release.full_rollout_at is None or not release.phase.clock_running:
        return policy.contract_not_before
    wait = _utc(release.full_rollout_at) + policy.contract_not_before - _utc(at)
    return wait if wait > timedelta(0) else None


# ── following the Rollout ────────────────────────────────────────────────────────────────


def _same_revision(
    release: Release, obs: RolloutObservation, events: list[ReleaseEvent]
) -> Release:
    if obs.aborted:
        if release.phase.clock_running:
            events.append(ReleaseEvent.ABORTED)
            return replace(release, phase=ReleasePhase.ABORTED, stopped_at=obs.at)
        return release
    if release.phase is ReleasePhase.ABORTED:
        events.append(ReleaseEvent.RETRIED)
        release = replace(
            release,
            phase=ReleasePhase.PROGRESSING,
            clock_started_at=obs.at,
            stopped_at=None,
            full_rollout_at=None,
        )
    if not release.phase.clock_running:  # reverted: an old observation arriving late
        return release
    if obs.fully_promoted and release.full_rollout_at is None:
        events.append(ReleaseEvent.FULL_ROLLOUT)
        return replace(release, phase=ReleasePhase.FULLY_ROLLED_OUT, full_rollout_at=obs.at)
    if release.phase is ReleasePhase.STARTED:
        events.append(ReleaseEvent.PROGRESSING)
        return replace(release, phase=ReleasePhase.PROGRESSING)
    return release


def advance(release: Release, obs: RolloutObservation) -> tuple[Release, list[ReleaseEvent]]:
    """The release after one observation of its Rollout, and what changed.

    Not bound yet: binds to the observed revision when it runs the release's version (the
    stable version then becomes the revert target). Its own revision: abort stops the
    clocks, a retry restarts them, full promotion fixes the full rollout. A newer revision
    running the previous version is a revert; any other newer revision (the next release)
    and older ones change nothing. The same observation twice gives no events the second time.
    """
    events: list[ReleaseEvent] = []
    if release.revision is None:
        if obs.version is None or obs.version != release.version:
            return release, []
        previous = release.previous_version
        if obs.stable_version is not None and obs.stable_version != release.version:
            previous = obs.stable_version
        release = replace(release, revision=obs.revision, previous_version=previous)
        events.append(ReleaseEvent.BOUND)
        return _same_revision(release, obs, events), events
    if obs.revision == release.revision:
        return _same_revision(release, obs, events), events
    if (
        obs.revision > release.revision
        and release.previous_version is not None
        and obs.version == release.previous_version
        and release.phase is not ReleasePhase.REVERTED
    ):
        # An abort already stopped the clocks: keep when they stopped.
        stopped_at = release.stopped_at if release.stopped_at is not None else obs.at
        reverted = replace(release, phase=ReleasePhase.REVERTED, stopped_at=stopped_at)
        return reverted, [ReleaseEvent.REVERTED]
    return release, []


def declare_winner(
    release: Release, variant: str, at: datetime
) -> tuple[Release, list[ReleaseEvent]]:
    """Record the experiment's winner; the same variant again changes nothing, another one
    replaces it (and restarts the experiment clock)."""
    if release.winner == variant:
        return release, []
    return replace(release, winner=variant, winner_at=at), [ReleaseEvent.WINNER]


# ── the ticket's description (Jira wiki markup, REST v2) ──────────────────────────────────


def _mono(text: str) -> str:
    return "{{" + text + "}}"


def _link_title(title: str) -> str:
    return re.sub(r"([\[\]|])", r"\\\1", title)


def _what_why(
    ticket: PlannedTicket, release: Release, subject: CleanupSubject, policy: CleanupPolicy
) -> tuple[str, str]:
    what = f"{release.service} {release.version}"
    kind = ticket.kind
    if kind is TicketKind.REMOVE_RELEASE_FLAG:
        flag = _mono(subject.release_flag) if subject.release_flag else "the release flag"
        return (
            f"Remove the release flag {flag} of {what}: the flag in the flag provider and "
            "every check of it in the code.",
            "Flag debt: a release toggle lives only until its release is fully rolled out. "
            "Left behind, it is a code path nobody tests and a switch someone can flip by "
            f"mistake. Due {_days(policy.flag_removal_days)} after full rollout.",
        )
    if kind is TicketKind.CONTRACT_MIGRATION:
        target = release.previous_version or "the previous version"
        return (
            f"Apply the {subject.contract_step}: the contract step of the expand-contract "
            f"migration that shipped with {what}.",
            f"Expand-contract: {what} shipped the expand step, which keeps {target} working. "
            f"The contract step ships no sooner than {_hours(policy.contract_not_before)} h "
            f"after full rollout, so an emergency rollback to {target} does not break the "
            f"column contract. Due {_days(policy.contract_due_days)} after full rollout.",
        )
    if kind is TicketKind.DELETE_LEGACY_CODE:
        return (
            f"Delete the {subject.legacy_code} that {what} replaced.",
            "It stays only while the release flag (or the circuit breaker) can send traffic "
            "to it; once the flag goes, it is dead code. Due with the release flag removal.",
        )
    flag = _mono(subject.experiment_flag or "the experiment flag")
    if release.winner is not None and release.winner_at is not None:
        decided = (
            f"Winner: {_mono(release.winner)}, declared "
            f"{_utc(release.winner_at).strftime('%Y-%m-%d %H:%M')} UTC."
        )
    else:
        decided = "No winner declared yet."
    return (
        f"Remove the experiment flag {flag} of {what} and the losing variant's code.",
        "Flag debt: an experiment toggle ends when a winner is declared. "
        f"{decided} Due {_days(policy.experiment_removal_days)} after the winner, counted "
        "from the full rollout when that comes later.",
    )


def _when(instant: datetime, policy: CleanupPolicy) -> str:
    local = _utc(instant).astimezone(policy.zone)
    return (
        f"{local.strftime('%Y-%m-%d %H:%M %Z')} ({policy.timezone}; "
        f"{_utc(instant).strftime('%Y-%m-%d %H:%M')} UTC)"
    )


def describe(
    ticket: PlannedTicket,
    release: Release,
    subject: CleanupSubject,
    policy: CleanupPolicy,
    links: Mapping[str, str],
) -> str:
    """The ticket's description: what and why, the dates, the links, who filed it."""
    what, why = _what_why(ticket, release, subject, policy)
    lines = [f"*What:* {what}", f"*Why:* {why}", ""]
    if ticket.due is None:
        lines.append(
            f"*Due:* {_days(policy.experiment_removal_days)} after a winner is declared "
            "(no winner yet)"
        )
    else:
        due = f"*Due:* {ticket.due.isoformat()}"
        if ticket.provisional:
            due += (
                " (provisional: full rollout not seen yet, estimated from the expected "
                f"rollout of {_hours(policy.expected_rollout)} h)"
            )
        lines.append(due)
    if ticket.not_before is not None:
        not_before = f"*Not before:* {_when(ticket.not_before, policy)}"
        if ticket.provisional:
            not_before += " (provisional)"
        lines.append(not_before)
    if links:
        lines += ["", "*Links*"]
        lines += [f"* [{_link_title(title)}|{url}]" for title, url in links.items()]
    lines += [
        "",
        "----",
        f"Filed by rollbot for release {release.id}. Label: {_mono(ticket.label)}",
    ]
    return "\n".join(lines)
