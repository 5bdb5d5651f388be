"""Following a release's tickets up once they are filed: Jira's due dates moved to the
plan's, their status read back from Jira (a contract step marked done too early is
refused and reopened), and the reminders before a due date and escalations after it.

Each runs from a scheduler job (bot.releases.jobs) and says what it did in the release
thread, the service's channel and the audit log; a notice is sent once (`notice_sent`)
and given back when Slack did not take it, so the retry sends it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.core import cleanup, mrkdwn
from bot.core.errors import RollbotError
from bot.core.model import AuditEntry, Release, TicketKind
from bot.core.ports import TicketRecord
from bot.releases.context import ReleaseContext
from bot.releases.schedule import ReleaseSchedule
from bot.releases.text import human, link_key

log = logging.getLogger(__name__)

_SLACK_USER = "<@{}>"


class FollowUps:
    """Moves due dates, reads the tickets' status, reminds and escalates."""

    def __init__(self, ctx: ReleaseContext, schedule: ReleaseSchedule) -> None:
        self.ctx = ctx
        self.schedule = schedule

    # ── due dates ───────────────────────────────────────────────────────────────────────

    async def move_dates(self, release_id: str) -> str:
        """Set Jira's due dates to the plan's; returns "PAY-1 → 2026-04-28, …" of the moves
        (mrkdwn for the release thread: Jira's keys escaped)."""
        ctx = self.ctx
        release = await ctx.get(release_id)
        if ctx.tickets is None:
            return ""
        planned = {p.kind.value: p for p in ctx.plan(release)}
        moves: list[str] = []
        for rec in await ctx.store.tickets(release_id):
            p = planned.get(rec.kind)
            if p is None or rec.key is None:
                continue
            if rec.due == p.due and rec.provisional == p.provisional:
                continue
            try:
                if rec.due != p.due:
                    await ctx.tickets.set_due(rec.key, p.due)
            except RollbotError as err:
                log.warning("due date of %s not moved: %s (retried)", rec.key, err.message)
                await self.schedule.put(
                    f"{release_id}:move-dates",
                    "move-dates",
                    {"release": release_id},
                    delay=ctx.settings.releases.retry_seconds,
                )
                continue
            await ctx.store.update_ticket(
                release_id, rec.kind, due=p.due, provisional=p.provisional
            )
            if rec.due != p.due:
                old = f"{rec.due.isoformat()}" if rec.due else "none"
                new = p.due.isoformat() if p.due else "none"
                moves.append(f"{mrkdwn.escape(rec.key or '')} {old} → {new}")
        return ", ".join(moves)

    # ── Jira status ─────────────────────────────────────────────────────────────────────

    async def poll(self, release_id: str) -> None:
        """Read the tickets' status from Jira; refuse a contract step done too early."""
        ctx = self.ctx
        if ctx.tickets is None:
            return
        release = await ctx.get(release_id)
        for rec in await ctx.store.tickets(release_id):
            if rec.key is None:
                continue
            try:
                ref = await ctx.tickets.get(rec.key)
            except RollbotError as err:
                log.info("status of %s not read: %s", rec.key, err.message)
                continue
            await ctx.store.update_ticket(
                release_id, rec.kind, status=ref.status, status_category=ref.status_category
            )
            if rec.kind == TicketKind.CONTRACT_MIGRATION.value and ref.done:
                done_at = ref.resolved_at or ctx.clock.now()
                wait = cleanup.contract_wait(release, done_at, ctx.policy(release.service))
                if wait is not None:
                    await self._refuse_contract(release, rec, ref.key, done_at, wait)

    async def _refuse_contract(
        self, release: Release, rec: TicketRecord, key: str, done_at: datetime, wait: timedelta
    ) -> None:
        ctx = self.ctx
        notice = f"{release.id}:refusal:{key}:{done_at.isoformat()}"
        if not await ctx.store.mark_notice_sent(notice, release_id=release.id):
            return
        policy = ctx.policy(release.service)
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
                f"full rollout), {human(wait.total_seconds())} after it was marked done"
            )
        assert ctx.tickets is not None
        status = None
        try:
            await ctx.tickets.comment(
                key,
                "rollbot refuses this: the contract step (NOT NULL) was marked done too "
                f"early: {when}. "
                f"An emergency rollback before then would break the column contract. Reopened.",
            )
            status = await ctx.tickets.reopen(key)
        except RollbotError as err:
            log.warning("refusal on %s not recorded in Jira: %s", key, err.message)
        if status:
            await ctx.store.update_ticket(
                release.id, rec.kind, status=status, status_category="new"
            )
        owner = _SLACK_USER.format(release.owner_slack) if release.owner_slack else "owner"
        await ctx.thread(
            release,
            f":no_entry: {owner}: {link_key(key, rec.url)} (contract step) was marked "
            "done too early: "
            f"{when}. rollbot {'reopened it' if status else 'could not reopen it'}.",
        )
        await ctx.store.append_audit(
            AuditEntry(
                at=ctx.clock.now(),
                actor="rollbot",
                action="release.contract.refuse",
                target=release.id,
                result="refused",
                detail={"key": key, "done_at": done_at, "reopened": status},
            )
        )

    # ── reminders and escalations ───────────────────────────────────────────────────────

    async def run_notice(
        self, release_id: str, notice_id: str, kind: str, ticket: str, due: str
    ) -> None:
        """Send reminder or escalation `notice_id` for `ticket`, unless the release stopped,
        the ticket is done, its due date moved from `due`, or it was sent before."""
        ctx = self.ctx
        release = await ctx.store.get_release(release_id)
        if release is None or not release.phase.clock_running:
            return
        rec = await ctx.store.get_ticket(release_id, ticket)
        if rec is None:
            return
        if rec.key and ctx.tickets is not None:
            try:
                ref = await ctx.tickets.get(rec.key)
                rec = await ctx.store.update_ticket(
                    release_id, ticket, status=ref.status, status_category=ref.status_category
                )
            except RollbotError as err:
                log.info("status of %s not read before a %s: %s", rec.key, kind, err.message)
        if rec.status_category == "done":
            return
        planned = {p.kind.value: p for p in ctx.plan(release)}.get(ticket)
        if planned is None or planned.due is None or planned.due.isoformat() != due:
            return  # the due date moved since this was scheduled
        if not await ctx.store.mark_notice_sent(notice_id, release_id=release_id):
            return
        svc = ctx.service(release.service)
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
        what = f"{link_key(rec.key, rec.url) if rec.key else '(not filed)'} *{summary}*"
        prov = " (provisional)" if planned.provisional else ""
        try:
            if kind == "reminder":
                days = (
                    planned.due
                    - ctx.clock.now()
                    .astimezone(ZoneInfo(ctx.policy(release.service).timezone))
                    .date()
                ).days
                await ctx.thread(
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
                await ctx.chat.post(
                    svc.channel,
                    text=":rotating_light: Overdue cleanup for "
                    f"{release.service} {mrkdwn.safe(release.version, 128)}: "
                    f"{what} was due on {planned.due.isoformat()}{prov}. Owner: {owner}.{group}",
                )
        except RollbotError:
            await ctx.store.unmark_notice(notice_id)
            raise
        await ctx.store.append_audit(
            AuditEntry(
                at=ctx.clock.now(),
                actor="rollbot",
                action=f"release.{kind}",
                target=release.id,
                result="succeeded",
                detail={"ticket": ticket, "key": rec.key, "due": due},
            )
        )
        await self.schedule.reconcile(release_id)
