"""A release as people see it: the `ReleaseView` (the plan's tickets with rollbot's records
of them, the checklist, the thread link) that `/release status`, the App Home, the CLI and
the release thread show, and the checklist message kept up to date in the thread.

The Block Kit is bot.blocks.release, imported when a message is built.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from bot.core.errors import RollbotError
from bot.core.model import ChecklistItem, MessageRef, Release, ReleaseView, TicketView
from bot.releases.checklist import Checklist
from bot.releases.context import ReleaseContext

log = logging.getLogger(__name__)


class ReleaseViews:
    """Builds a release's view; posts (then edits) its checklist message in the thread."""

    def __init__(self, ctx: ReleaseContext, checklist: Checklist) -> None:
        self.ctx = ctx
        self.checklist = checklist
        self._checklist_locks: dict[str, asyncio.Lock] = {}  # one checklist message each

    async def view(self, release: Release, *, with_checklist: bool = True) -> ReleaseView:
        ctx = self.ctx
        records = {t.kind: t for t in await ctx.store.tickets(release.id)}
        tickets = []
        for p in ctx.plan(release):
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
        checklist: tuple[ChecklistItem, ...] = (
            tuple(await self.checklist.items(release)) if with_checklist else ()
        )
        return ReleaseView(
            release=release,
            tickets=tuple(tickets),
            checklist=checklist,
            timezone=ctx.policy(release.service).timezone,
            rollout_link=None,
            thread_link=ctx.thread_link(release),
        )

    async def post_checklist(self, release_id: str) -> None:
        """Post the release's checklist in its thread, or edit the one posted before."""
        async with self._checklist_locks.setdefault(release_id, asyncio.Lock()):
            await self._post_checklist(release_id)

    async def _post_checklist(self, release_id: str) -> None:
        from bot.blocks import release as release_blocks

        ctx = self.ctx
        release = await ctx.get(release_id)
        if not (release.channel and release.thread_ts):
            return
        view = await self.view(release)
        text, blocks = release_blocks.release_checklist(view)
        try:
            if release.checklist_ts:
                await ctx.chat.update(
                    MessageRef(release.channel, release.checklist_ts), text=text, blocks=blocks
                )
            else:
                ref = await ctx.chat.post(
                    release.channel, text=text, blocks=blocks, thread_ts=release.thread_ts
                )
                async with ctx.lock(release_id):
                    fresh = await ctx.get(release_id)
                    await ctx.store.save_release(replace(fresh, checklist_ts=ref.ts))
        except RollbotError as err:
            log.warning("checklist of %s not posted: %s", release_id, err.message)
