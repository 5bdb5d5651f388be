"""Releases: started once, their cleanup tickets filed once, their dates kept honest.

    start ─► release record (once per service@version) ─► card, thread + checklist in Slack
          └► ticket records (pending) ─► Jira: search by label, else create ─► filed
          (refused, nothing recorded, when the Rollout's revision of it was aborted)
    watch ─► advance(release, observation) ─► the card updated in place to the new phase
                                           ├► full rollout: due dates move to the real ones
                                           ├► abort / revert: comments, clocks stop
                                           └► retry: comments, clocks restart (provisional)
    schedule (leader only) ─► reminders, escalations, Jira status polls, retries, cards

`ReleaseEngine` is the one object the rest of rollbot holds (the composition root, the
`/release` listeners as their `ReleaseDesk`, the CLI). It builds the collaborators below
around one shared `ReleaseContext` and passes each call to the one that owns it:

    context.py    ReleaseContext   ports, catalog and cleanup policy, per-release locks, thread
    starting.py   ReleaseStarter   a release recorded once (not on an aborted revision), its
                                   owner, its thread
    card.py       ReleaseCard      the release card: posted once, updated in place
    filing.py     TicketFiling     the cleanup tickets filed in Jira exactly once
    tracking.py   RolloutTracking  phases from the Rollout (watch) and the winner
    checklist.py  Checklist        the checklist's items, each checked against the world
    views.py      ReleaseViews     the ReleaseView, the checklist message in the thread
    followups.py  FollowUps        due-date moves, Jira status, reminders, escalations
    schedule.py   ReleaseSchedule  the jobs in the scheduler and the reconciler
    jobs.py       JobRunner        what each job does when the scheduler runs it
    text.py       (functions)      ticket keys as links, durations in words

Time is read only from `clock` (bot.runtime.scheduler.Clock), so drills and tests can run a
month of due dates in seconds.
"""

from __future__ import annotations

from typing import Any

from bot.core import cleanup
from bot.core.model import Actor, ChecklistItem, Release, ReleaseView, RolloutState
from bot.core.ports import Chat, Flags, Rollouts, Tickets
from bot.releases.card import ReleaseCard
from bot.releases.checklist import Checklist
from bot.releases.context import ReleaseContext
from bot.releases.filing import FilingResult, TicketFiling
from bot.releases.followups import FollowUps
from bot.releases.jobs import JobRunner
from bot.releases.schedule import ReleaseSchedule
from bot.releases.starting import ReleaseStarter
from bot.releases.tracking import RolloutTracking
from bot.releases.views import ReleaseViews
from bot.runtime.scheduler import Clock, JobScheduler
from bot.settings import ServiceName, ServiceSettings, Settings
from bot.store import SqlStore


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
        ctx = ReleaseContext(
            settings=settings,
            store=store,
            chat=chat,
            rollouts=rollouts,
            tickets=tickets,
            clock=clock,
            flags=flags,
            pagerduty=pagerduty,
            scheduler=scheduler,
            public_url=public_url,
            slack_team_url=slack_team_url,
        )
        self.context = ctx
        self.views = ReleaseViews(ctx, Checklist(ctx))
        self.schedule = ReleaseSchedule(ctx)
        self.card = ReleaseCard(ctx, self.schedule)
        self.schedule.also_reconcile(self.card.reconcile)
        self.followups = FollowUps(ctx, self.schedule)
        self.filing = TicketFiling(ctx, self.views, self.schedule)
        # The watch may see a release before anyone starts it: tracking starts it through
        # this facade, which starts it with the starter built below.
        self.tracking = RolloutTracking(
            ctx,
            views=self.views,
            followups=self.followups,
            schedule=self.schedule,
            start=self.start,
            card=self.card,
        )
        self.starter = ReleaseStarter(
            ctx,
            views=self.views,
            filing=self.filing,
            tracking=self.tracking,
            schedule=self.schedule,
            card=self.card,
        )
        self.jobs = JobRunner(ctx, self.schedule, self.filing, self.followups, self.card)

    # ── what it was built with (read-only) ──────────────────────────────────────────────

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def catalog(self) -> dict[ServiceName, ServiceSettings]:
        return self.context.catalog

    @property
    def store(self) -> SqlStore:
        return self.context.store

    @property
    def chat(self) -> Chat:
        return self.context.chat

    @property
    def rollouts(self) -> Rollouts:
        return self.context.rollouts

    @property
    def tickets(self) -> Tickets | None:
        return self.context.tickets

    @property
    def clock(self) -> Clock:
        return self.context.clock

    @property
    def flags(self) -> Flags | None:
        return self.context.flags

    @property
    def pagerduty(self) -> Any:
        return self.context.pagerduty

    @property
    def scheduler(self) -> JobScheduler | None:
        return self.context.scheduler

    @property
    def public_url(self) -> str | None:
        return self.context.public_url

    @property
    def slack_team_url(self) -> str | None:
        return self.context.slack_team_url

    # ── the catalog ─────────────────────────────────────────────────────────────────────

    def policy(self, service: str) -> cleanup.CleanupPolicy:
        return self.context.policy(service)

    def subject(self, service: str) -> cleanup.CleanupSubject:
        return self.context.subject(service)

    def plan(self, release: Release) -> list[cleanup.PlannedTicket]:
        return self.context.plan(release)

    # ── start, filing ───────────────────────────────────────────────────────────────────

    async def start(
        self, service: str, version: str, *, actor: Actor, owner: str | None = None
    ) -> tuple[bool, ReleaseView]:
        """Start `service` `version` once. (False, the existing one) when started before;
        `RevisionAborted` (nothing done) when the Rollout's revision of it was aborted."""
        return await self.starter.start(service, version, actor=actor, owner=owner)

    async def file_tickets(self, release_id: str) -> FilingResult:
        """File the release's tickets that are not filed yet, each exactly once."""
        return await self.filing.file_tickets(release_id)

    # ── the Rollout, the winner ─────────────────────────────────────────────────────────

    async def on_rollout(self, service: str, state: RolloutState) -> None:
        """Advance every release of `service` with what the watch saw; auto-start one."""
        await self.tracking.on_rollout(service, state)

    async def declare_winner(self, service: str, variant: str, *, actor: Actor) -> ReleaseView:
        return await self.tracking.declare_winner(service, variant, actor=actor)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def status(self, service: str) -> list[ReleaseView]:
        """The service's releases, newest first, their tickets' status read from Jira."""
        self.context.service(service)
        views = []
        for release in await self.store.list_releases(service=service):
            if release.phase.clock_running:
                await self.followups.poll(release.id)
            views.append(await self.views.view(await self.context.get(release.id)))
        return views

    async def list_active(self) -> list[ReleaseView]:
        return [await self.views.view(r) for r in await self.store.list_releases(active=True)]

    async def view(self, release: Release, *, with_checklist: bool = True) -> ReleaseView:
        return await self.views.view(release, with_checklist=with_checklist)

    async def checklist(self, release: Release) -> list[ChecklistItem]:
        return await self.views.checklist.items(release)

    async def post_checklist(self, release_id: str) -> None:
        await self.views.post_checklist(release_id)

    # ── follow-ups ──────────────────────────────────────────────────────────────────────

    async def move_dates(self, release_id: str) -> str:
        """Set Jira's due dates to the plan's; returns "PAY-1 → 2026-04-28, …" of the moves."""
        return await self.followups.move_dates(release_id)

    async def poll(self, release_id: str) -> None:
        """Read the tickets' status from Jira; refuse a contract step done too early."""
        await self.followups.poll(release_id)

    async def run_notice(
        self, release_id: str, notice_id: str, kind: str, ticket: str, due: str
    ) -> None:
        await self.followups.run_notice(release_id, notice_id, kind, ticket, due)

    # ── the schedule ────────────────────────────────────────────────────────────────────

    async def run_job(self, kind: str, args: dict[str, Any]) -> None:
        """The scheduler's entry point (bot.runtime.scheduler calls it on the leader)."""
        await self.jobs.run_job(kind, args)

    async def reconcile(self, release_id: str | None = None) -> None:
        """Make the scheduler's jobs (and, for every release, the release cards) match the
        releases in the database (leader only)."""
        await self.schedule.reconcile(release_id)

    async def run_reconciler(self) -> None:
        """Rebuild the schedule on becoming the leader, then every `reconcile_seconds`."""
        await self.schedule.run_reconciler()
