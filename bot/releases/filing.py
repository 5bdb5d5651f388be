"""Filing a release's cleanup tickets in Jira, each exactly once, across Jira outages and
`kill -9`:

- Each ticket has rollbot's own record. Before a create the record says `creating` (with
  the time); after it, `filed` with the key. A record found `creating` after a crash means
  "the create may have happened": rollbot searches Jira for the ticket's label and adopts
  what it finds. Jira Cloud's search is eventually consistent, so an empty answer is
  trusted only `jira.search_settle_seconds` after the attempt; before that the filing is
  retried later instead of creating a duplicate.
- Every ticket carries a label per release and kind, and a search precedes every create.

Jira being down never loses work: the records stay `pending`, the filing job is retried
with backoff (and rebuilt from the records at every start by the reconciler), and the
thread says the tickets are late and, once filed, how late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.core import cleanup, mrkdwn
from bot.core.errors import PermanentError, RollbotError, TemporaryError
from bot.core.model import AuditEntry, Release, TicketRef, TicketSpec
from bot.core.ports import TicketRecord
from bot.releases.context import ReleaseContext
from bot.releases.schedule import ReleaseSchedule
from bot.releases.text import human, in_order, link
from bot.releases.views import ReleaseViews
from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

MAX_RETRY = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class FilingResult:
    filed: tuple[str, ...]  # keys filed (or adopted) in this attempt
    failed: tuple[str, ...]  # "kind: why" Jira refused
    pending: bool  # some tickets still wait for Jira


class TicketFiling:
    """Files the tickets a release's plan asks for, says how it went in the thread, and
    schedules its own retry while Jira is down."""

    def __init__(self, ctx: ReleaseContext, views: ReleaseViews, schedule: ReleaseSchedule) -> None:
        self.ctx = ctx
        self.views = views
        self.schedule = schedule
        self._attempts: dict[str, int] = {}  # Jira filing attempts that failed, per release

    async def file_tickets(self, release_id: str) -> FilingResult:
        """File the release's tickets that are not filed yet, each exactly once.

        Never raises for Jira trouble: an outage leaves the records pending and schedules a
        retry; a 400 marks that ticket failed with Jira's reason, says so in the thread and
        goes on with the others."""
        ctx = self.ctx
        async with ctx.lock(release_id):
            release = await ctx.get(release_id)
            svc = ctx.service(release.service)
            records = {t.kind: t for t in await ctx.store.tickets(release.id)}
            if ctx.tickets is None or not svc.jira.project:
                return FilingResult((), (), pending=False)
            filed: list[str] = []
            failed: list[str] = []
            pending = False
            first_attempt = all(r.attempted_at is None for r in records.values())
            plan = ctx.plan(release)
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
                    for ref in await ctx.tickets.find_by_label(
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
                        await ctx.store.update_ticket(
                            release.id, p.kind.value, state="failed", error=err.message
                        )
                        failed.append(f"{p.kind.value}: {err.message}")
                    plan = []
            for planned in plan:
                rec = records.get(planned.kind.value) or await ctx.store.ensure_ticket(
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
                    await ctx.store.update_ticket(
                        release.id, planned.kind.value, state="failed", error=err.message
                    )
                    failed.append(f"{planned.kind.value}: {err.message}")
                    continue
                if key is None:  # a lost create, not yet visible to search: later
                    pending = True
                    delay = self._settle_delay(rec)
                    await self.schedule.file_tickets_later(release.id, delay=delay)
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
        ctx = self.ctx
        assert ctx.tickets is not None and svc.jira.project
        project = svc.jira.project
        if found:  # filed before (a create whose answer was lost): adopt the first
            chosen = sorted(found, key=lambda t: _key_number(t.key))[0]
            await self._mark_filed(release, planned, chosen, due=chosen.due)
            return chosen.key
        now = ctx.clock.now()
        if rec.state == "creating" and rec.attempted_at is not None:
            settle = timedelta(seconds=ctx.settings.jira.search_settle_seconds)
            if now - rec.attempted_at < settle:
                return None
        spec = TicketSpec(
            project=project,
            summary=planned.summary,
            description=cleanup.describe(
                planned,
                release,
                ctx.subject(release.service),
                ctx.policy(release.service),
                ctx.links(release),
            ),
            labels=("rollbot", cleanup.release_label(release), planned.label),
            due=planned.due,
            assignee=release.owner,
            issue_type=svc.jira.issue_type or ctx.settings.jira.issue_type,
            extra_fields=tuple(sorted(svc.jira.fields.items())),
        )
        await ctx.store.update_ticket(
            release.id, planned.kind.value, state="creating", attempted_at=now
        )
        ref = await ctx.tickets.create(spec)
        await self._mark_filed(release, planned, ref, due=planned.due)
        await ctx.store.append_audit(
            AuditEntry(
                at=ctx.clock.now(),
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
        await self.ctx.store.update_ticket(
            release.id,
            planned.kind.value,
            state="filed",
            key=ref.key,
            url=ref.url,
            due=due,
            provisional=planned.provisional,
            status=ref.status,
            status_category=ref.status_category,
            filed_at=self.ctx.clock.now(),
            error=None,
        )

    def _settle_delay(self, rec: TicketRecord) -> float:
        if rec.attempted_at is None:
            return 1.0
        settle = timedelta(seconds=self.ctx.settings.jira.search_settle_seconds)
        left = (rec.attempted_at + settle - self.ctx.clock.now()).total_seconds()
        return max(1.0, left)

    async def _jira_down(
        self, release: Release, err: TemporaryError, *, first_attempt: bool
    ) -> None:
        ctx = self.ctx
        attempt = await self._bump_attempts(release.id)
        delay = err.delay or min(
            ctx.settings.releases.retry_seconds * 2 ** max(0, attempt - 1),
            MAX_RETRY.total_seconds(),
        )
        await self.schedule.file_tickets_later(release.id, delay=delay)
        notice = f"{release.id}:jira-down"
        if await ctx.store.mark_notice_sent(notice, release_id=release.id):
            try:
                await ctx.thread(
                    release,
                    f":warning: Jira is unreachable ({mrkdwn.escape(err.message)}). The cleanup "
                    "tickets are not filed yet; rollbot keeps trying and will say here when "
                    "they are.",
                    raise_errors=True,
                )
            except RollbotError as slack:
                log.warning("release thread of %s: %s (said next time)", release.id, slack)
                await ctx.store.unmark_notice(notice)

    async def _bump_attempts(self, release_id: str) -> int:
        self._attempts[release_id] = self._attempts.get(release_id, 0) + 1
        return self._attempts[release_id]

    async def _report_filing(self, release_id: str, result: FilingResult) -> None:
        ctx = self.ctx
        release = await ctx.get(release_id)
        records = in_order(await ctx.store.tickets(release_id))
        if result.failed:
            # Jira's refusals quote what it was sent and what it thinks: escaped.
            lines = "\n".join(f"• {mrkdwn.escape(f)}" for f in result.failed)
            await ctx.thread(
                release,
                f":x: Jira refused some cleanup tickets; nothing else is hidden:\n{lines}\n"
                f"Fix the service's Jira settings (`services.{release.service}.jira`) and run "
                f"`/release status {release.service}`.",
            )
        all_filed = bool(records) and all(r.state == "filed" for r in records)
        if all_filed and await ctx.store.mark_notice_sent(
            f"{release.id}:filed", release_id=release.id
        ):
            keys = ", ".join(link(r) for r in records)
            late = await ctx.store.notice_sent(f"{release.id}:jira-down")
            if late:
                delay = human((ctx.clock.now() - release.started_at).total_seconds())
                await ctx.thread(
                    release,
                    f":white_check_mark: Cleanup tickets filed *late* ({delay} after the "
                    f"release started; Jira was unreachable): {keys}.",
                )
            else:
                await ctx.thread(release, f":white_check_mark: Cleanup tickets filed: {keys}.")
        if result.filed or result.failed or all_filed:
            await self.views.post_checklist(release_id)


def _key_number(key: str) -> int:
    try:
        return int(key.rsplit("-", 1)[-1])
    except ValueError:
        return 0
