"""The scheduler's entry point for releases: what each job kind that bot.releases.schedule
puts does when it runs on the leader. A job that fails for a temporary reason (Jira or
Slack down) is put again, under its own id or `{release}:{kind}:retry`, after the delay
the error asks for or `releases.retry_seconds`; filing and the release card schedule their
own retries.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core.errors import TemporaryError
from bot.releases.card import ReleaseCard
from bot.releases.context import ReleaseContext
from bot.releases.filing import TicketFiling
from bot.releases.followups import FollowUps
from bot.releases.schedule import ReleaseSchedule

log = logging.getLogger(__name__)


class JobRunner:
    """Runs a release job by kind: file-tickets, move-dates, poll, notice, comment, card,
    reconcile."""

    def __init__(
        self,
        ctx: ReleaseContext,
        schedule: ReleaseSchedule,
        filing: TicketFiling,
        followups: FollowUps,
        card: ReleaseCard,
    ) -> None:
        self.ctx = ctx
        self.schedule = schedule
        self.filing = filing
        self.followups = followups
        self.card = card

    async def run_job(self, kind: str, args: dict[str, Any]) -> None:
        """The scheduler's entry point (bot.runtime.scheduler calls it on the leader)."""
        ctx = self.ctx
        release_id = str(args.get("release", ""))
        try:
            if kind == "file-tickets":
                await self.filing.file_tickets(release_id)
            elif kind == "move-dates":
                await self.followups.move_dates(release_id)
            elif kind == "poll":
                await self.followups.poll(release_id)
                await self.schedule.reconcile(release_id)
            elif kind == "notice":
                await self.followups.run_notice(
                    release_id, args["id"], args["notice"], args["ticket"], args["due"]
                )
            elif kind == "comment":
                assert ctx.tickets is not None
                if not await ctx.store.notice_sent(args["notice"]):
                    await ctx.tickets.comment(args["key"], args["body"])
                    await ctx.store.mark_notice_sent(args["notice"], release_id=release_id)
            elif kind == "card":
                await self.card.refresh(release_id)  # puts itself again while Slack refuses
            elif kind == "reconcile":
                await self.schedule.reconcile()
            else:
                log.warning("unknown job kind %r (args %r): ignored", kind, args)
        except TemporaryError as err:
            delay = err.delay or ctx.settings.releases.retry_seconds
            log.warning(
                "job %s for %s failed (%s); again in %.0f s", kind, release_id, err.message, delay
            )
            if kind != "file-tickets":  # file_tickets schedules its own retry
                job_id = str(args.get("job_id") or f"{release_id}:{kind}:retry")
                await self.schedule.put(job_id, kind, args, delay=delay)
