"""The jobs releases keep in the scheduler (bot.runtime.scheduler), and the reconciler
that makes them match the database.

Jobs, by id (`kind`):

    {release}:file-tickets       file-tickets   filing retried while Jira is down
    {release}:move-dates         move-dates     Jira due dates moved to the plan's
    {release}:poll               poll           Jira status read every `jira_poll_seconds`
    {release}:notice:{…}         notice         a reminder or an escalation
    {release}:comment:…          comment        a ticket comment Jira did not take
    {release}:card               card           the release card, updated again after Slack
                                                did not take an update (429, 5xx)

The database is the truth; the jobs are derived from it. `reconcile` re-derives a
release's jobs (or every active release's) and is cheap to run again: the leader runs it
when it becomes the leader and every `releases.reconcile_seconds`, so releases started by
the CLI (which has no scheduler) and jobs lost in a failover are picked up. A full pass
also runs the passes registered with `also_reconcile` (the release cards, which re-derive
what each card should show from the database). What a job does when it runs is
bot.releases.jobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.core import cleanup
from bot.core.model import Release, TicketKind
from bot.releases.context import ReleaseContext
from bot.runtime.scheduler import ScheduledJob

log = logging.getLogger(__name__)


class ReleaseSchedule:
    """Puts the releases' jobs in the scheduler and reconciles them with the database."""

    def __init__(self, ctx: ReleaseContext) -> None:
        self.ctx = ctx
        self._reconcile_lock = asyncio.Lock()
        self._passes: list[Callable[[], Awaitable[None]]] = []

    def also_reconcile(self, full_pass: Callable[[], Awaitable[None]]) -> None:
        """Run `full_pass` after every full reconcile (of every release), on the leader."""
        self._passes.append(full_pass)

    async def put(
        self, job_id: str, kind: str, args: dict[str, Any], *, delay: float = 0.0
    ) -> None:
        """Job `job_id` (`kind`, `args` plus its own id) `delay` seconds from now; nothing in
        a process without a scheduler (the CLI): the leader's reconciler puts it."""
        ctx = self.ctx
        if ctx.scheduler is None:
            return
        await ctx.scheduler.put(
            ScheduledJob(
                id=job_id,
                at=ctx.clock.now() + timedelta(seconds=delay),
                kind=kind,
                args={**args, "job_id": job_id},
            )
        )

    async def file_tickets_later(self, release_id: str, *, delay: float) -> None:
        """The release's filing, again in `delay` seconds (Jira down, or a create that may
        not be visible to search yet)."""
        ctx = self.ctx
        job = ScheduledJob(
            id=f"{release_id}:file-tickets",
            at=ctx.clock.now() + timedelta(seconds=delay),
            kind="file-tickets",
            args={"release": release_id},
        )
        if ctx.scheduler is not None:
            await ctx.scheduler.put(job)

    async def reconcile(self, release_id: str | None = None) -> None:
        """Make the scheduler's jobs match the releases in the database (leader only)."""
        ctx = self.ctx
        if ctx.scheduler is None or not ctx.scheduler.leader:
            return
        async with self._reconcile_lock:
            if release_id is None:
                # Aborted and reverted releases had their notices removed when they
                # stopped; their filing retries are already scheduled.
                releases = await ctx.store.list_releases(active=True)
            else:
                releases = [await ctx.get(release_id)]
            now = ctx.clock.now()
            for release in releases:
                await self._reconcile_one(release, now)
        if release_id is None:
            for full_pass in self._passes:
                await full_pass()

    async def _reconcile_one(self, release: Release, now: datetime) -> None:
        ctx = self.ctx
        scheduler = ctx.scheduler
        assert scheduler is not None
        records = await ctx.store.tickets(release.id)
        if any(r.state in ("pending", "creating") for r in records) and ctx.tickets is not None:
            existing = await scheduler.jobs(f"{release.id}:file-tickets")
            if not existing:
                await self.put(
                    f"{release.id}:file-tickets", "file-tickets", {"release": release.id}
                )
        if release.phase.clock_running and ctx.tickets is not None:
            planned_due = {p.kind.value: p.due for p in ctx.plan(release)}
            if any(r.key and r.due != planned_due.get(r.kind) for r in records):
                await self.put(f"{release.id}:move-dates", "move-dates", {"release": release.id})
        done = {TicketKind(r.kind) for r in records if r.status_category == "done"}
        wanted: list[ScheduledJob] = []
        if release.phase.clock_running:
            policy = ctx.policy(release.service)
            for n in cleanup.notices(release, ctx.plan(release), done, policy, now):
                if await ctx.store.notice_sent(n.id):
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
        await scheduler.sync(f"{release.id}:notice:", wanted)
        poll_id = f"{release.id}:poll"
        if release.phase.clock_running and ctx.tickets is not None and any(r.key for r in records):
            if not await scheduler.jobs(poll_id):
                await self.put(
                    poll_id,
                    "poll",
                    {"release": release.id},
                    delay=ctx.settings.releases.jira_poll_seconds,
                )
        else:
            await scheduler.remove(poll_id)

    async def run_reconciler(self) -> None:
        """Rebuild the schedule on becoming the scheduler's leader, then every
        `releases.reconcile_seconds` (releases started from CI write only the database)."""
        ctx = self.ctx
        interval = ctx.settings.releases.reconcile_seconds
        was_leader = False
        last = 0.0
        loop = asyncio.get_running_loop()
        while True:
            leader = ctx.scheduler is not None and ctx.scheduler.leader
            due = leader and (not was_leader or loop.time() - last >= interval)
            was_leader = leader
            if due:
                last = loop.time()
                try:
                    await self.reconcile()
                except Exception:  # boundary: a background loop must survive one bad pass
                    log.exception("release reconcile failed; again in %.0f s", interval)
            await asyncio.sleep(min(1.0, interval))
