"""Releases: started once, their cleanup tickets filed once, their dates kept honest.

    start ─► release record (once per service@version) ─► thread + checklist in Slack
          └► ticket records (pending) ─► Jira: search by label, else create ─► filed
    watch ─► advance(release, observation) ─► full rollout: due dates move to the real ones
                                           ├► abort / revert: comments, clocks stop
                                           └► retry: comments, clocks restart (provisional)
    schedule (leader only) ─► reminders, escalations, Jira status polls, retries

Exactly once, across Jira outages and `kill -9`:

- A release is a row keyed `service@version`; a second start gets the first one back.
- Each ticket has rollbot's own record. Before a create the record says `creating` (with
  the time); after it, `filed` with the key. A record found `creating` after a crash means
  "the create may have happened": rollbot searches Jira for the ticket's label and adopts
  what it finds. Jira Cloud's search is eventually consistent, so an empty answer is
  trusted only `jira.search_settle_seconds` after the attempt; before that the filing is
  retried later instead of creating a duplicate.
- Every ticket carries a label per release and kind, and a search precedes every create.

Jira being down never loses work: the records stay `pending`, the filing job is retried
with backoff (and rebuilt from the records at every start), and the thread says the
tickets are late and, once filed, how late.

Time is read only from `clock` (bot.scheduler.Clock), so drills and tests can run a month
of due dates in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.core import cleanup, mrkdwn
from bot.core.errors import (
    InvalidRequest,
    PermanentError,
    RollbotError,
    TargetNotFound,
    TemporaryError,
    UnknownService,
)
from bot.core.model import (
    Actor,
    AuditEntry,
    ChecklistItem,
    Release,
    ReleasePhase,
    ReleaseView,
    RolloutState,
    TicketKind,
    TicketRef,
    TicketSpec,
    TicketView,
)
from bot.core.ports import Chat, Flags, Rollouts, TicketRecord, Tickets
from bot.runtime.scheduler import Clock, JobScheduler, ScheduledJob
from bot.settings import ServiceSettings, Settings
from bot.store import SqlStore

log = logging.getLogger(__name__)

MAX_RETRY = timedelta(minutes=15)
# The image tag; 64 keeps every scheduler job id within APScheduler's 191 characters.
_VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")
_SLACK_USER = "<@{}>"


@dataclass(frozen=True, slots=True)
class FilingResult:
    filed: tuple[str, ...]  # keys filed (or adopted) in this attempt
    failed: tuple[str, ...]  # "kind: why" Jira refused
    pending: bool  # some tickets still wait for Jira


class ReleaseEngine:
    """Starts releases, files and keeps their cleanup tickets; the `ReleaseDesk` of Slack."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: SqlStore,
        chat: Chat,
        rollouts: Rollouts,
        tickets: Tickets | None,
        clock: Clock,
        flags: Flags | None = None,
        pagerduty: Any = None,  # PagerDutyOnCall (service_description), optional
        scheduler: JobScheduler | None = None,
        public_url: str | None = None,
        slack_team_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = settings.services
        self.store = store
        self.chat = chat
        self.rollouts = rollouts
        self.tickets = tickets
        self.clock = clock
        self.flags = flags
        self.pagerduty = pagerduty
        self.scheduler = scheduler
        self.public_url = public_url
        self.slack_team_url = slack_team_url
        self._locks: dict[str, asyncio.Lock] = {}
        self._reconcile_lock = asyncio.Lock()
        self._attempts: dict[str, int] = {}
        self._checklist_locks: dict[
            str, asyncio.Lock
        ] = {}  # one checklist message each  # Jira filing attempts that failed, per release

    # ── the catalog ─────────────────────────────────────────────────────────────────────

    def _service(self, name: str) -> ServiceSettings:
        svc = self.catalog.get(name)
        if svc is None:
            raise UnknownService(name, self.catalog)
        return svc

    def policy(self, service: str) -> cleanup.CleanupPolicy:
        r = self._service(service).release
        return cleanup.CleanupPolicy(
            timezone=r.timezone,
            expected_rollout=timedelta(hours=r.expected_rollout_hours),
            flag_removal_days=r.flag_removal_days,
            contract_not_before=timedelta(hours=r.contract_not_before_hours),
            contract_due_days=r.contract_due_days,
            experiment_removal_days=r.experiment_removal_days,
            reminder_days_before=r.reminder_days_before,
            notify_at=r.notify_at,
            escalate_every_days=r.escalate_every_days,
        )

    def subject(self, service: str) -> cleanup.CleanupSubject:
        svc = self._service(service)
        return cleanup.CleanupSubject(
            release_flag=svc.flags.release,
            experiment_flag=svc.flags.experiment,
            legacy_code=svc.release.legacy_code,
            contract_step=svc.release.contract_step,
        )

    def plan(self, release: Release) -> list[cleanup.PlannedTicket]:
        return cleanup.plan(release, self.subject(release.service), self.policy(release.service))

    def _lock(self, release_id: str) -> asyncio.Lock:
        return self._locks.setdefault(release_id, asyncio.Lock())

    # ── start ───────────────────────────────────────────────────────────────────────────

    async def start(
        self, service: str, version: str, *, actor: Actor, owner: str | None = None
    ) -> tuple[bool, ReleaseView]:
        """Start `service` `version` once. (False, the existing one) when started before."""
        svc = self._service(service)
        version = version.strip()
        if not _VERSION.fullmatch(version):
            raise InvalidRequest(
                f"`{version[:64]}` is not a version (1–64 of letters, digits and `._+-`; "
                "the image tag the Rollout runs)."
            )
        now = self.clock.now()
        owner_email, owner_slack = await self._owner(svc, owner, actor)
        release = Release(
            id=cleanup.release_id(service, version),
            service=service,
            version=version,
            phase=ReleasePhase.STARTED,
            started_at=now,
            clock_started_at=now,
            source=actor.source,
            started_by=actor.id,
            owner=owner_email,
            owner_slack=owner_slack,
        )
        # Filing, the watch and the scheduler wait for the thread to exist: what they say
        # belongs in it.
        async with self._lock(release.id):
            created, release = await self.store.create_release(release)
            if not created:
                return False, await self.view(release, with_checklist=False)
            release = await self._record_start(release, actor, owner_email)
        await self.file_tickets(release.id)
        # Bind to the Rollout now if it already runs this version (CI may start the
        # release after the sync); the watch does it otherwise.
        await self._observe_now(release)
        await self.reconcile(release.id)
        return True, await self.view(await self._get(release.id), with_checklist=False)

    async def _record_start(
        self, release: Release, actor: Actor, owner_email: str | None
    ) -> Release:
        now = release.started_at
        await self.store.append_audit(
            AuditEntry(
                at=now,
                actor=actor.id,
                action="release.start",
                target=release.id,
                result="succeeded",
                detail={"source": actor.source, "owner": owner_email, "by": actor.name},
            )
        )
        for planned in self.plan(release):
            await self.store.ensure_ticket(release.id, planned.kind.value, label=planned.label)
        return await self._post_thread(release, actor)

    async def _owner(
        self, svc: ServiceSettings, owner: str | None, actor: Actor
    ) -> tuple[str | None, str | None]:
        """(Jira assignee, Slack user) from `@user`, an email, the catalog or the starter."""
        if owner:
            owner = owner.strip()
            if owner.startswith("<@") and owner.endswith(">"):
                user = owner[2:-1].split("|", 1)[0]
                return await self._safe(self.chat.user_email(user)), user
            if "@" in owner:
                return owner, await self._safe(self.chat.user_id_by_email(owner))
            return owner, None  # a Jira account id or user name
        configured = svc.owners.jira_assignee
        if configured:
            slack = (
                await self._safe(self.chat.user_id_by_email(configured))
                if "@" in configured
                else None
            )
            return configured, slack
        if actor.source in ("slack", "slash-command") and actor.id:
            return await self._safe(self.chat.user_email(actor.id)), actor.id
        return None, None

    @staticmethod
    async def _safe(awaitable: Any) -> Any:
        try:
            return await awaitable
        except RollbotError as err:
            log.warning("owner lookup failed: %s", err.message)
            return None

    async def _post_thread(self, release: Release, actor: Actor) -> Release:
        from bot.blocks import release as release_blocks

        svc = self._service(release.service)
        view = await self.view(release, with_checklist=False)
        text, blocks = release_blocks.release_started(view)
        try:
            ref = await self.chat.post(svc.channel, text=text, blocks=blocks)
        except RollbotError as err:
            log.warning("release thread for %s not posted: %s", release.id, err.message)
            return release
        release = replace(release, channel=ref.channel, thread_ts=ref.ts)
        await self.store.save_release(release)
        return release

    # ── filing ──────────────────────────────────────────────────────────────────────────

    async def file_tickets(self, release_id: str) -> FilingResult:
        """File the release's tickets that are not filed yet, each exactly once.

        Never raises for Jira trouble: an outage leaves the records pending and schedules a
        retry; a 400 marks that ticket failed with Jira's reason, says so in the thread and
        goes on with the others."""
        async with self._lock(release_id):
            release = await self._get(release_id)
            svc = self._service(release.service)
            records = {t.kind: t for t in await self.store.tickets(release.id)}
            if self.tickets is None or not svc.jira.project:
                return FilingResult((), (), pending=False)
            filed: list[str] = []
            failed: list[str] = []
            pending = False
            first_attempt = all(r.attempted_at is None for r in records.values())
            plan = self.plan(release)
            # One search for the whole release (its label is on every ticket) instead of
            # one per ticket; grouped by the tickets' own labels.
            existing: dict[str, list[TicketRef]] = {}
            unfiled = [
                p
                for p in plan
                if p.kind.value not in records
                or records[p.kind.value].state in ("pending", "creating")
            ]
            if unfiled:
                try:
                    for ref in await self.tickets.find_by_label(
                        svc.jira.project, cleanup.release_label(release)
                    ):
                        for label in ref.labels:
                            existing.setdefault(label, []).append(ref)
                except TemporaryError as err:
                    pending = True
                    await self._jira_down(release, err, first_attempt=first_attempt)
                    plan = []  # nothing can be filed now; retried later
                except PermanentError as err:  # e.g. no such project: say it per ticket
                    for p in unfiled:
                        await self.store.update_ticket(
                            release.id, p.kind.value, state="failed", error=err.message
                        )
                        failed.append(f"{p.kind.value}: {err.message}")
                    plan = []
            for planned in plan:
                rec = records.get(planned.kind.value) or await self.store.ensure_ticket(
                    release.id, planned.kind.value, label=planned.label
                )
                if rec.state in ("filed", "failed"):
                    continue
                try:
                    key = await self._file_one(
                        release, svc, planned, rec, existing.get(planned.label, [])
                    )
                except TemporaryError as err:
                    pending = True
                    await self._jira_down(release, err, first_attempt=first_attempt)
                    break
                except PermanentError as err:
                    await self.store.update_ticket(
                        release.id, planned.kind.value, state="failed", error=err.message
                    )
                    failed.append(f"{planned.kind.value}: {err.message}")
                    continue
                if key is None:  # a lost create, not yet visible to search: later
                    pending = True
                    await self._retry_filing(release.id, delay=self._settle_delay(rec))
                    break
                filed.append(key)
            result = FilingResult(tuple(filed), tuple(failed), pending)
        await self._report_filing(release_id, result)
        return result

    async def _file_one(
        self,
        release: Release,
        svc: ServiceSettings,
        planned: cleanup.PlannedTicket,
        rec: TicketRecord,
        found: list[TicketRef],
    ) -> str | None:
        """The key of the ticket, found by the release's search or filed now; None when a
        lost create may still show up in search (the caller retries later)."""
        assert self.tickets is not None and svc.jira.project
        project = svc.jira.project
        if found:  # filed before (a create whose answer was lost): adopt the first
            chosen = sorted(found, key=lambda t: _key_number(t.key))[0]
            await self._mark_filed(release, planned, chosen, due=chosen.due)
            return chosen.key
        now = self.clock.now()
        if rec.state == "creating" and rec.attempted_at is not None:
            settle = timedelta(seconds=self.settings.jira.search_settle_seconds)
            if now - rec.attempted_at < settle:
                return None
        spec = TicketSpec(
            project=project,
            summary=planned.summary,
            description=cleanup.describe(
                planned,
                release,
                self.subject(release.service),
                self.policy(release.service),
                self._links(release),
            ),
            labels=("rollbot", cleanup.release_label(release), planned.label),
            due=planned.due,
            assignee=release.owner,
            issue_type=svc.jira.issue_type or self.settings.jira.issue_type,
            extra_fields=tuple(sorted(svc.jira.fields.items())),
        )
        await self.store.update_ticket(
            release.id, planned.kind.value, state="creating", attempted_at=now
        )
        ref = await self.tickets.create(spec)
        await self._mark_filed(release, planned, ref, due=planned.due)
        await self.store.append_audit(
            AuditEntry(
                at=self.clock.now(),
                actor="rollbot",
                action="release.ticket.file",
                target=release.id,
                result="succeeded",
                detail={"kind": planned.kind.value, "key": ref.key, "due": planned.due},
            )
        )
        return ref.key

    async def _mark_filed(
        self, release: Release, planned: cleanup.PlannedTicket, ref: TicketRef, *, due: Any
    ) -> None:
        """Record the ticket as filed under `ref.key`, with the due date Jira has."""
        await self.store.update_ticket(
            release.id,
            planned.kind.value,
            state="filed",
            key=ref.key,
            url=ref.url,
            due=due,
            provisional=planned.provisional,
            status=ref.status,
            status_category=ref.status_category,
            filed_at=self.clock.now(),
            error=None,
        )

    def _settle_delay(self, rec: TicketRecord) -> float:
        if rec.attempted_at is None:
            return 1.0
        settle = timedelta(seconds=self.settings.jira.search_settle_seconds)
        left = (rec.attempted_at + settle - self.clock.now()).total_seconds()
        return max(1.0, left)

    async def _jira_down(
        self, release: Release, err: TemporaryError, *, first_attempt: bool
    ) -> None:
        attempt = await self._bump_attempts(release.id)
        delay = err.delay or min(
            self.settings.releases.retry_seconds * 2 ** max(0, attempt - 1),
            MAX_RETRY.total_seconds(),
        )
        await self._retry_filing(release.id, delay=delay)
        notice = f"{release.id}:jira-down"
        if await self.store.mark_notice_sent(notice, release_id=release.id):
            try:
                await self._thread(
                    release,
                    f":warning: Jira is unreachable ({mrkdwn.escape(err.message)}). The cleanup "
                    "tickets are not filed yet; rollbot keeps trying and will say here when "
                    "they are.",
                    raise_errors=True,
                )
            except RollbotError as slack:
                log.warning("release thread of %s: %s (said next time)", release.id, slack)
                await self.store.unmark_notice(notice)

    async def _bump_attempts(self, release_id: str) -> int:
        self._attempts[release_id] = self._attempts.get(release_id, 0) + 1
        return self._attempts[release_id]

    async def _retry_filing(self, release_id: str, *, delay: float) -> None:
        job = ScheduledJob(
            id=f"{release_id}:file-tickets",
            at=self.clock.now() + timedelta(seconds=delay),
            kind="file-tickets",
            args={"release": release_id},
        )
        if self.scheduler is not None:
            await self.scheduler.put(job)

    async def _report_filing(self, release_id: str, result: FilingResult) -> None:
        release = await self._get(release_id)
        records = _in_order(await self.store.tickets(release_id))
        if result.failed:
            # Jira's refusals quote what it was sent and what it thinks: escaped.
            lines = "\n".join(f"• {mrkdwn.escape(f)}" for f in result.failed)
            await self._thread(
                release,
                f":x: Jira refused some cleanup tickets; nothing else is hidden:\n{lines}\n"
                f"Fix the service's Jira settings (`services.{release.service}.jira`) and run "
                f"`/release status {release.service}`.",
            )
        all_filed = bool(records) and all(r.state == "filed" for r in records)
        if all_filed and await self.store.mark_notice_sent(
            f"{release.id}:filed", release_id=release.id
        ):
            keys = ", ".join(_link(r) for r in records)
            late = await self.store.notice_sent(f"{release.id}:jira-down")
            if late:
                delay = _human((self.clock.now() - release.started_at).total_seconds())
                await self._thread(
                    release,
                    f":white_check_mark: Cleanup tickets filed *late* ({delay} after the "
                    f"release started; Jira was unreachable): {keys}.",
                )
            else:
                await self._thread(release, f":white_check_mark: Cleanup tickets filed: {keys}.")
        if result.filed or result.failed or all_filed:
            await self.post_checklist(release_id)

    # ── the watch ───────────────────────────────────────────────────────────────────────

    async def on_rollout(self, service: str, state: RolloutState) -> None:
        """Advance every release of `service` with what the watch saw; auto-start one."""
        svc = self.catalog.get(service)
        if svc is None:
            return
        obs = self._observation(state)
        if svc.release.auto_start and obs.version and not state.aborted:
            rid = cleanup.release_id(service, obs.version)
            if not state.fully_promoted and await self.store.get_release(rid) is None:
                await self.start(
                    service, obs.version, actor=Actor("watch", "rollbot (watch)", source="watch")
                )
        for release in await self.store.list_releases(service=service):
            if release.phase is ReleasePhase.REVERTED:
                continue
            await self._advance(release.id, obs)

    async def _observe_now(self, release: Release) -> None:
        svc = self._service(release.service)
        try:
            state = await self.rollouts.get_state(svc.namespace, svc.rollout)
        except RollbotError as err:
            log.info("release %s: Rollout not read at start: %s", release.id, err.message)
            return
        await self._advance(release.id, self._observation(state))

    def _observation(self, state: RolloutState) -> cleanup.RolloutObservation:
        return cleanup.RolloutObservation(
            revision=state.revision,
            version=cleanup.image_version(state.canary_image),
            stable_version=cleanup.image_version(state.stable_image),
            fully_promoted=state.fully_promoted and state.phase == "Healthy",
            aborted=state.aborted,
            at=self.clock.now(),
        )

    async def _advance(self, release_id: str, obs: cleanup.RolloutObservation) -> None:
        async with self._lock(release_id):
            release = await self._get(release_id)
            before = self.plan(release)
            after_release, events = cleanup.advance(release, obs)
            if not events:
                return
            await self.store.save_release(after_release)
        await self._on_events(after_release, before, events)

    async def _on_events(
        self,
        release: Release,
        before: Sequence[cleanup.PlannedTicket],
        events: Sequence[cleanup.ReleaseEvent],
    ) -> None:
        E = cleanup.ReleaseEvent
        zone = ZoneInfo(self.policy(release.service).timezone)
        for event in events:
            await self.store.append_audit(
                AuditEntry(
                    at=self.clock.now(),
                    actor="rollbot",
                    action=f"release.{event.value}",
                    target=release.id,
                    result="succeeded",
                    detail={"revision": release.revision, "phase": release.phase.value},
                )
            )
        if E.FULL_ROLLOUT in events:
            assert release.full_rollout_at is not None
            at = release.full_rollout_at.astimezone(zone)
            await self._comment_all(
                release,
                f"Full rollout of {release.service} {release.version} seen at "
                f"{at:%Y-%m-%d %H:%M %Z}: the due date now counts from it (was provisional).",
                event="full-rollout",
            )
            moved = await self.move_dates(release.id)
            await self._thread(
                release,
                f":checkered_flag: Fully rolled out at {at:%Y-%m-%d %H:%M %Z}. "
                + (f"Due dates moved to the real ones: {moved}." if moved else "Due dates set."),
            )
        if E.ABORTED in events or E.REVERTED in events:
            what = "aborted" if E.ABORTED in events else "reverted"
            await self._comment_all(
                release,
                f"The release {release.service} {release.version} was {what}: this ticket's "
                f"clock is stopped (no reminders or escalations) until it is retried.",
                event=what,
            )
            await self._thread(
                release,
                f":double_vertical_bar: Release {what}: the cleanup tickets' clocks are "
                f"stopped; a retry restarts them.",
            )
        if E.RETRIED in events:
            await self._comment_all(
                release,
                f"The release {release.service} {release.version} was retried: the clock "
                f"restarts; due dates are provisional again until the full rollout.",
                event="retried",
            )
            moved = await self.move_dates(release.id)
            await self._thread(
                release,
                ":arrows_counterclockwise: Release retried: the clocks restart (due dates "
                f"provisional again{': ' + moved if moved else ''}).",
            )
        await self.reconcile(release.id)
        if E.BOUND in events or E.FULL_ROLLOUT in events:
            await self.post_checklist(release.id)

    async def _comment_all(self, release: Release, body: str, *, event: str) -> None:
        if self.tickets is None:
            return
        for rec in await self.store.tickets(release.id):
            if rec.key is None:
                continue
            stamp = release.stopped_at or release.full_rollout_at or release.clock_started_at
            notice = f"{release.id}:comment:{event}:{int(stamp.timestamp())}:{rec.kind}"
            if await self.store.notice_sent(notice):
                continue
            try:
                await self.tickets.comment(rec.key, body)
            except RollbotError as err:
                log.warning("comment on %s not added: %s (retried)", rec.key, err.message)
                await self._schedule_now(
                    f"{notice}",
                    "comment",
                    {"release": release.id, "key": rec.key, "body": body, "notice": notice},
                )
                continue
            await self.store.mark_notice_sent(notice, release_id=release.id)

    async def move_dates(self, release_id: str) -> str:
        """Set Jira's due dates to the plan's; returns "PAY-1 → 2026-04-28, …" of the moves
        (mrkdwn for the release thread: Jira's keys escaped)."""
        release = await self._get(release_id)
        if self.tickets is None:
            return ""
        planned = {p.kind.value: p for p in self.plan(release)}
        moves: list[str] = []
        for rec in await self.store.tickets(release_id):
            p = planned.get(rec.kind)
            if p is None or rec.key is None:
                continue
            if rec.due == p.due and rec.provisional == p.provisional:
                continue
            try:
                if rec.due != p.due:
                    await self.tickets.set_due(rec.key, p.due)
            except RollbotError as err:
                log.warning("due date of %s not moved: %s (retried)", rec.key, err.message)
                await self._schedule_now(
                    f"{release_id}:move-dates",
                    "move-dates",
                    {"release": release_id},
                    delay=self.settings.releases.retry_seconds,
                )
                continue
            await self.store.update_ticket(
                release_id, rec.kind, due=p.due, provisional=p.provisional
            )
            if rec.due != p.due:
                old = f"{rec.due.isoformat()}" if rec.due else "none"
                new = p.due.isoformat() if p.due else "none"
                moves.append(f"{mrkdwn.escape(rec.key or '')} {old} → {new}")
        return ", ".join(moves)

    # ── winner ──────────────────────────────────────────────────────────────────────────

    async def declare_winner(self, service: str, variant: str, *, actor: Actor) -> ReleaseView:
        svc = self._service(service)
        if not svc.flags.experiment:
            raise InvalidRequest(
                f"`{service}` has no experiment flag (`services.{service}.flags.experiment`), "
                f"so there is no winner to declare."
            )
        releases = [
            r for r in await self.store.list_releases(service=service) if r.phase.clock_running
        ]
        if not releases:
            raise InvalidRequest(
                f"`{service}` has no active release. Start one with "
                f"`/release start {service} VERSION`."
            )
        release = releases[0]
        async with self._lock(release.id):
            release = await self._get(release.id)
            updated, events = cleanup.declare_winner(release, variant, self.clock.now())
            if events:
                await self.store.save_release(updated)
        if events:
            await self.store.append_audit(
                AuditEntry(
                    at=self.clock.now(),
                    actor=actor.id,
                    action="release.winner",
                    target=release.id,
                    result="succeeded",
                    detail={"variant": variant, "by": actor.name},
                )
            )
            moved = await self.move_dates(release.id)
            await self._thread(
                updated,
                f":trophy: Winner `{mrkdwn.safe(variant, 64)}` declared by "
                f"{mrkdwn.safe(actor.name, 80)}: the experiment flag "
                f"`{svc.flags.experiment}` is due for removal "
                f"{self._due_of(updated, TicketKind.REMOVE_EXPERIMENT_FLAG)}"
                + (f" ({moved})" if moved else "")
                + ".",
            )
            await self.reconcile(release.id)
        return await self.view(await self._get(release.id))

    def _due_of(self, release: Release, kind: TicketKind) -> str:
        for p in self.plan(release):
            if p.kind is kind:
                if p.due is None:
                    return "when a winner is declared"
                return p.due.isoformat() + (" (provisional)" if p.provisional else "")
        return "never"

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def status(self, service: str) -> list[ReleaseView]:
        self._service(service)
        views = []
        for release in await self.store.list_releases(service=service):
            if release.phase.clock_running:
                await self.poll(release.id)
            views.append(await self.view(await self._get(release.id)))
        return views

    async def list_active(self) -> list[ReleaseView]:
        return [await self.view(r) for r in await self.store.list_releases(active=True)]

    async def view(self, release: Release, *, with_checklist: bool = True) -> ReleaseView:
        records = {t.kind: t for t in await self.store.tickets(release.id)}
        tickets = []
        for p in self.plan(release):
            rec = records.get(p.kind.value)
            tickets.append(
                TicketView(
                    kind=p.kind,
                    summary=p.summary,
                    state=rec.state if rec else "pending",
                    key=rec.key if rec else None,
                    url=rec.url if rec else None,
                    due=p.due,
                    provisional=p.provisional,
                    not_before=p.not_before,
                    status=rec.status if rec else None,
                    done=bool(rec and rec.status_category == "done"),
                    error=rec.error if rec else None,
                )
            )
        checklist = tuple(await self.checklist(release)) if with_checklist else ()
        return ReleaseView(
            release=release,
            tickets=tuple(tickets),
            checklist=checklist,
            timezone=self.policy(release.service).timezone,
            rollout_link=None,
            thread_link=self._thread_link(release),
        )

    def _thread_link(self, release: Release) -> str | None:
        if not (release.channel and release.thread_ts and self.slack_team_url):
            return None
        ts = release.thread_ts.replace(".", "")
        return f"{self.slack_team_url}/archives/{release.channel}/p{ts}"

    def _links(self, release: Release) -> dict[str, str]:
        svc = self._service(release.service)
        links: dict[str, str] = {}
        if self.public_url:
            links["Runbook"] = f"{self.public_url}/runbooks/{release.service}"
        elif svc.runbook:
            links["Runbook"] = svc.runbook
        links["Rollout"] = f"kubectl argo rollouts get rollout {svc.rollout} -n {svc.namespace}"
        thread = self._thread_link(release)
        if thread:
            links["Release thread"] = thread
        return links

    async def _get(self, release_id: str) -> Release:
        release = await self.store.get_release(release_id)
        if release is None:
            raise TargetNotFound("release", "-", release_id)
        return release

    # ── checklist ───────────────────────────────────────────────────────────────────────

    async def checklist(self, release: Release) -> list[ChecklistItem]:
        svc = self._service(release.service)
        items: list[ChecklistItem] = []
        risk = svc.release.risk_surface
        items.append(
            ChecklistItem(
                "Risk surface document linked",
                bool(risk),
                risk or f"not set: add `services.{release.service}.release.risk_surface`",
            )
        )
        items.append(await self._check_flags(release.service, svc))
        items.append(await self._check_cluster(svc))
        path = self.settings.runbook_path(release.service)
        items.append(
            ChecklistItem(
                "Runbook present",
                path is not None,
                f"{svc.runbook} ({path.stat().st_size} bytes)"
                if path is not None
                else (
                    f"{svc.runbook} not found"
                    if svc.runbook
                    else f"`services.{release.service}.runbook` not set"
                ),
            )
        )
        items.append(await self._check_pagerduty(release.service, svc))
        records = _in_order(await self.store.tickets(release.id))
        if self.tickets is None or not svc.jira.project:
            items.append(
                ChecklistItem(
                    "Cleanup tickets filed",
                    False,
                    "no Jira configured (`jira.url`)"
                    if self.tickets is None
                    else f"`services.{release.service}.jira.project` not set",
                )
            )
        else:
            filed = [r for r in records if r.state == "filed"]
            ok = bool(records) and len(filed) == len(records)
            evidence = ", ".join(  # plain text: the checklist escapes it
                (r.key or r.kind)
                if r.state == "filed"
                else f"{r.kind}: {r.state}{' (' + r.error + ')' if r.error else ''}"
                for r in records
            )
            items.append(ChecklistItem("Cleanup tickets filed", ok, evidence or "none yet"))
        return items

    async def _check_flags(self, service: str, svc: ServiceSettings) -> ChecklistItem:
        name = "Flag inventory registered"
        keys = [k for k in (svc.flags.release, svc.flags.experiment, svc.flags.circuit) if k]
        if not keys:
            return ChecklistItem(name, False, f"no flags in `services.{service}.flags`")
        if self.flags is None:
            return ChecklistItem(
                name,
                None,
                f"{len(keys)} flags in the catalog; no flag provider configured to check them",
            )
        missing: list[str] = []
        for key in keys:
            try:
                await self.flags.get(key)
            except TargetNotFound:
                missing.append(key)
            except RollbotError as err:
                return ChecklistItem(name, None, f"could not check: {err.message}")
        if missing:
            return ChecklistItem(
                name, False, f"missing in {self.flags.provider}: {', '.join(missing)}"
            )
        return ChecklistItem(
            name, True, f"{len(keys)}/{len(keys)} in {self.flags.provider}: {', '.join(keys)}"
        )

    async def _check_cluster(self, svc: ServiceSettings) -> ChecklistItem:
        name = "Rollout and AnalysisTemplate in the cluster"
        templates = getattr(self.rollouts, "analysis_templates", None)
        try:
            if templates is None:
                await self.rollouts.get_state(svc.namespace, svc.rollout)
            found: dict[str, bool] = (
                await templates(svc.namespace, svc.rollout) if templates else {}
            )
        except TargetNotFound:
            return ChecklistItem(name, False, f"Rollout {svc.namespace}/{svc.rollout} not found")
        except RollbotError as err:
            return ChecklistItem(name, None, f"could not check: {err.message}")
        if not found:
            return ChecklistItem(
                name,
                False,
                f"Rollout {svc.namespace}/{svc.rollout} found; it refers to no AnalysisTemplate",
            )
        missing = [t for t, ok in found.items() if not ok]
        if missing:
            return ChecklistItem(
                name, False, f"Rollout found; AnalysisTemplate missing: {', '.join(missing)}"
            )
        return ChecklistItem(
            name,
            True,
            f"Rollout {svc.namespace}/{svc.rollout}, AnalysisTemplate {', '.join(found)}",
        )

    async def _check_pagerduty(self, service: str, svc: ServiceSettings) -> ChecklistItem:
        name = "Runbook linked from PagerDuty"
        sid = svc.pagerduty.service_id
        if not sid:
            return ChecklistItem(name, False, f"`services.{service}.pagerduty.service_id` not set")
        if self.pagerduty is None:
            return ChecklistItem(name, None, "no PagerDuty API token configured to check it")
        wanted = [
            u
            for u in (self.public_url and f"{self.public_url}/runbooks/{service}", svc.runbook)
            if u
        ]
        try:
            description = await self.pagerduty.service_description(sid)
        except RollbotError as err:
            return ChecklistItem(name, None, f"could not check service {sid}: {err.message}")
        for url in wanted:
            if url in description:
                return ChecklistItem(name, True, f"PagerDuty service {sid} links {url}")
        return ChecklistItem(
            name,
            False,
            f"PagerDuty service {sid} does not link the runbook (put "
            f"{wanted[0] if wanted else 'its URL'} in its description)",
        )

    async def post_checklist(self, release_id: str) -> None:

        async with self._checklist_locks.setdefault(release_id, asyncio.Lock()):
            await self._post_checklist(release_id)

    async def _post_checklist(self, release_id: str) -> None:
        from bot.blocks import release as release_blocks

        release = await self._get(release_id)
        if not (release.channel and release.thread_ts):
            return
        view = await self.view(release)
        text, blocks = release_blocks.release_checklist(view)
        try:
            if release.checklist_ts:
                from bot.core.model import MessageRef

                await self.chat.update(
                    MessageRef(release.channel, release.checklist_ts), text=text, blocks=blocks
                )
            else:
                ref = await self.chat.post(
                    release.channel, text=text, blocks=blocks, thread_ts=release.thread_ts
                )
                async with self._lock(release_id):
                    fresh = await self._get(release_id)
                    await self.store.save_release(replace(fresh, checklist_ts=ref.ts))
        except RollbotError as err:
            log.warning("checklist of %s not posted: %s", release_id, err.message)

    # ── Jira status, reminders, escalations ─────────────────────────────────────────────

    async def poll(self, release_id: str) -> None:
        """Read the tickets' status from Jira; refuse a contract step done too early."""
        if self.tickets is None:
            return
        release = await self._get(release_id)
        for rec in await self.store.tickets(release_id):
            if rec.key is None:
                continue
            try:
                ref = await self.tickets.get(rec.key)
            except RollbotError as err:
                log.info("status of %s not read: %s", rec.key, err.message)
                continue
            await self.store.update_ticket(
                release_id, rec.kind, status=ref.status, status_category=ref.status_category
            )
            if rec.kind == TicketKind.CONTRACT_MIGRATION.value and ref.done:
                done_at = ref.resolved_at or self.clock.now()
                wait = cleanup.contract_wait(release, done_at, self.policy(release.service))
                if wait is not None:
                    await self._refuse_contract(release, rec, ref.key, done_at, wait)

    async def _refuse_contract(
        self, release: Release, rec: TicketRecord, key: str, done_at: datetime, wait: timedelta
    ) -> None:
        notice = f"{release.id}:refusal:{key}:{done_at.isoformat()}"
        if not await self.store.mark_notice_sent(notice, release_id=release.id):
            return
        policy = self.policy(release.service)
        zone = ZoneInfo(policy.timezone)
        hours = policy.contract_not_before.total_seconds() / 3600
        if release.full_rollout_at is None:
            when = (
                "the release is not fully rolled out yet; it may be applied "
                f"{hours:g} h after the full rollout"
            )
        else:
            allowed = (release.full_rollout_at + policy.contract_not_before).astimezone(zone)
            when = (
                f"it may be applied from {allowed:%Y-%m-%d %H:%M %Z} ({hours:g} h after the "
                f"full rollout), {_human(wait.total_seconds())} after it was marked done"
            )
        assert self.tickets is not None
        status = None
        try:
            await self.tickets.comment(
                key,
                "rollbot refuses this: the contract step (NOT NULL) was marked done too "
                f"early: {when}. "
                f"An emergency rollback before then would break the column contract. Reopened.",
            )
            status = await self.tickets.reopen(key)
        except RollbotError as err:
            log.warning("refusal on %s not recorded in Jira: %s", key, err.message)
        if status:
            await self.store.update_ticket(
                release.id, rec.kind, status=status, status_category="new"
            )
        owner = _SLACK_USER.format(release.owner_slack) if release.owner_slack else "owner"
        await self._thread(
            release,
            f":no_entry: {owner}: {_link_key(key, rec.url)} (contract step) was marked "
            "done too early: "
            f"{when}. rollbot {'reopened it' if status else 'could not reopen it'}.",
        )
        await self.store.append_audit(
            AuditEntry(
                at=self.clock.now(),
                actor="rollbot",
                action="release.contract.refuse",
                target=release.id,
                result="refused",
                detail={"key": key, "done_at": done_at, "reopened": status},
            )
        )

    async def run_notice(
        self, release_id: str, notice_id: str, kind: str, ticket: str, due: str
    ) -> None:
        release = await self.store.get_release(release_id)
        if release is None or not release.phase.clock_running:
            return
        rec = await self.store.get_ticket(release_id, ticket)
        if rec is None:
            return
        if rec.key and self.tickets is not None:
            try:
                ref = await self.tickets.get(rec.key)
                rec = await self.store.update_ticket(
                    release_id, ticket, status=ref.status, status_category=ref.status_category
                )
            except RollbotError as err:
                log.info("status of %s not read before a %s: %s", rec.key, kind, err.message)
        if rec.status_category == "done":
            return
        planned = {p.kind.value: p for p in self.plan(release)}.get(ticket)
        if planned is None or planned.due is None or planned.due.isoformat() != due:
            return  # the due date moved since this was scheduled
        if not await self.store.mark_notice_sent(notice_id, release_id=release_id):
            return
        svc = self._service(release.service)
        owner = (
            _SLACK_USER.format(release.owner_slack)
            if release.owner_slack
            else (
                f"<!subteam^{svc.owners.slack_usergroup}>"
                if svc.owners.slack_usergroup
                else "owners"
            )
        )
        summary = mrkdwn.safe(planned.summary, 300)
        what = f"{_link_key(rec.key, rec.url) if rec.key else '(not filed)'} *{summary}*"
        prov = " (provisional)" if planned.provisional else ""
        try:
            if kind == "reminder":
                days = (
                    planned.due
                    - self.clock.now()
                    .astimezone(ZoneInfo(self.policy(release.service).timezone))
                    .date()
                ).days
                await self._thread(
                    release,
                    f":alarm_clock: Reminder {owner}: {what} is due on "
                    f"{planned.due.isoformat()}{prov} "
                    f"(in {days} day{'s' if days != 1 else ''}).",
                    raise_errors=True,
                )
            else:
                group = (
                    f" <!subteam^{svc.owners.slack_usergroup}>"
                    if svc.owners.slack_usergroup
                    else ""
                )
                await self.chat.post(
                    svc.channel,
                    text=":rotating_light: Overdue cleanup for "
                    f"{release.service} {mrkdwn.safe(release.version, 128)}: "
                    f"{what} was due on {planned.due.isoformat()}{prov}. Owner: {owner}.{group}",
                )
        except RollbotError:
            await self.store.unmark_notice(notice_id)
            raise
        await self.store.append_audit(
            AuditEntry(
                at=self.clock.now(),
                actor="rollbot",
                action=f"release.{kind}",
                target=release.id,
                result="succeeded",
                detail={"ticket": ticket, "key": rec.key, "due": due},
            )
        )
        await self.reconcile(release_id)

    # ── the schedule ────────────────────────────────────────────────────────────────────

    async def run_job(self, kind: str, args: dict[str, Any]) -> None:
        """The scheduler's entry point (bot.scheduler calls it on the leader)."""
        release_id = str(args.get("release", ""))
        try:
            if kind == "file-tickets":
                await self.file_tickets(release_id)
            elif kind == "move-dates":
                await self.move_dates(release_id)
            elif kind == "poll":
                await self.poll(release_id)
                await self.reconcile(release_id)
            elif kind == "notice":
                await self.run_notice(
                    release_id, args["id"], args["notice"], args["ticket"], args["due"]
                )
            elif kind == "comment":
                assert self.tickets is not None
                if not await self.store.notice_sent(args["notice"]):
                    await self.tickets.comment(args["key"], args["body"])
                    await self.store.mark_notice_sent(args["notice"], release_id=release_id)
            elif kind == "reconcile":
                await self.reconcile()
            else:
                log.warning("unknown job kind %r (args %r): ignored", kind, args)
        except TemporaryError as err:
            delay = err.delay or self.settings.releases.retry_seconds
            log.warning(
                "job %s for %s failed (%s); again in %.0f s", kind, release_id, err.message, delay
            )
            if kind != "file-tickets":  # file_tickets schedules its own retry
                job_id = str(args.get("job_id") or f"{release_id}:{kind}:retry")
                await self._schedule_now(job_id, kind, args, delay=delay)

    async def _schedule_now(
        self, job_id: str, kind: str, args: dict[str, Any], *, delay: float = 0.0
    ) -> None:
        if self.scheduler is None:
            return
        await self.scheduler.put(
            ScheduledJob(
                id=job_id,
                at=self.clock.now() + timedelta(seconds=delay),
                kind=kind,
                args={**args, "job_id": job_id},
            )
        )

    async def reconcile(self, release_id: str | None = None) -> None:
        """Make the scheduler's jobs match the releases in the database (leader only)."""
        if self.scheduler is None or not self.scheduler.leader:
            return
        async with self._reconcile_lock:
            if release_id is None:
                # Aborted and reverted releases had their notices removed when they
                # stopped; their filing retries are already scheduled.
                releases = await self.store.list_releases(active=True)
            else:
                releases = [await self._get(release_id)]
            now = self.clock.now()
            for release in releases:
                await self._reconcile_one(release, now)

    async def _reconcile_one(self, release: Release, now: datetime) -> None:
        assert self.scheduler is not None
        records = await self.store.tickets(release.id)
        if any(r.state in ("pending", "creating") for r in records) and self.tickets is not None:
            existing = await self.scheduler.jobs(f"{release.id}:file-tickets")
            if not existing:
                await self._schedule_now(
                    f"{release.id}:file-tickets", "file-tickets", {"release": release.id}
                )
        if release.phase.clock_running and self.tickets is not None:
            planned_due = {p.kind.value: p.due for p in self.plan(release)}
            if any(r.key and r.due != planned_due.get(r.kind) for r in records):
                await self._schedule_now(
                    f"{release.id}:move-dates", "move-dates", {"release": release.id}
                )
        done = {TicketKind(r.kind) for r in records if r.status_category == "done"}
        wanted: list[ScheduledJob] = []
        if release.phase.clock_running:
            policy = self.policy(release.service)
            for n in cleanup.notices(release, self.plan(release), done, policy, now):
                if await self.store.notice_sent(n.id):
                    continue
                wanted.append(
                    ScheduledJob(
                        id=f"{release.id}:notice:{n.id.removeprefix(release.id + ':')}",
                        at=n.at,
                        kind="notice",
                        args={
                            "release": release.id,
                            "id": n.id,
                            "notice": n.kind,
                            "ticket": n.ticket.value,
                            "due": n.due.isoformat(),
                        },
                    )
                )
        await self.scheduler.sync(f"{release.id}:notice:", wanted)
        poll_id = f"{release.id}:poll"
        if release.phase.clock_running and self.tickets is not None and any(r.key for r in records):
            if not await self.scheduler.jobs(poll_id):
                await self._schedule_now(
                    poll_id,
                    "poll",
                    {"release": release.id},
                    delay=self.settings.releases.jira_poll_seconds,
                )
        else:
            await self.scheduler.remove(poll_id)

    async def run_reconciler(self) -> None:
        """Rebuild the schedule on becoming the scheduler's leader, then every
        `releases.reconcile_seconds` (releases started from CI write only the database)."""
        interval = self.settings.releases.reconcile_seconds
        was_leader = False
        last = 0.0
        loop = asyncio.get_running_loop()
        while True:
            leader = self.scheduler is not None and self.scheduler.leader
            due = leader and (not was_leader or loop.time() - last >= interval)
            was_leader = leader
            if due:
                last = loop.time()
                try:
                    await self.reconcile()
                except Exception:  # boundary: a background loop must survive one bad pass
                    log.exception("release reconcile failed; again in %.0f s", interval)
            await asyncio.sleep(min(1.0, interval))

    # ── Slack ───────────────────────────────────────────────────────────────────────────

    async def _thread(self, release: Release, text: str, *, raise_errors: bool = False) -> None:
        svc = self._service(release.service)
        try:
            await self.chat.post(
                release.channel or svc.channel, text=text, thread_ts=release.thread_ts
            )
        except RollbotError as err:
            if raise_errors:
                raise
            log.warning("release thread of %s: %s", release.id, err.message)


_ORDER = {k.value: i for i, k in enumerate(TicketKind)}


def _in_order(records: Sequence[TicketRecord]) -> list[TicketRecord]:
    return sorted(records, key=lambda r: _ORDER.get(r.kind, len(_ORDER)))


def _key_number(key: str) -> int:
    try:
        return int(key.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _link(rec: TicketRecord) -> str:
    return _link_key(rec.key or rec.kind, rec.url)


def _link_key(key: str | None, url: str | None) -> str:
    """A Jira key as mrkdwn, linked to its URL when that is a web URL (both are Jira's)."""
    shown = mrkdwn.safe(key, 40) if key else "?"
    if key and url and mrkdwn.is_web_url(url):
        return mrkdwn.link(url, shown)
    return shown


def _human(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
