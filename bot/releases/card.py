"""The release card: the root of the release thread in the service's channel, kept saying
where the release is (started, rolling out, fully rolled out, aborted, retried, reverted).

    start ─► post, once (its ts is the release's `thread_ts`, in the database)
    a phase change (watch, abort, retry, revert) ─► refresh ─► chat.update of that message
    the leader's reconcile ─► refresh of every card that does not show its release yet

The card is posted once and from then on only updated in place (`chat.update` of
`thread_ts`): no retry can post a second one. What it shows is rendered from the release
record alone (`bot.blocks.release.release_started`: no clock, no tickets), and a digest of
the rendering Slack last took is kept in the database beside the release
(`card_digest`). An update is sent only when the rendering differs from it, so the same
phase seen twice, a second replica or a restart send nothing, and a change made while
rollbot was down (or whose update was lost in a crash) is shown by the next reconcile.

Refreshes of one release are coalesced: while one is sending, another asks it to render
once more when it is done, and that render carries the latest state. Slack refusing an
update for a while (429 after the client's own retries, 5xx, a timeout) puts the card's
job (`{release}:card`, run by bot.releases.jobs) after the delay Slack asked for or
`releases.retry_seconds`; without a scheduler (the CLI) the leader's reconcile catches up.
An update Slack refuses for good (the message was deleted) is logged and not retried by
this process.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from typing import Any

from bot.cards import posting
from bot.core.errors import RollbotError, TemporaryError
from bot.core.model import MessageRef, Release, ReleaseView
from bot.releases.context import ReleaseContext
from bot.releases.schedule import ReleaseSchedule

# Seconds the release's card is tried for (Retry-After obeyed, a lost answer looked for)
# before the release goes on without a thread: its start waits for it, under its lock.
POST_PATIENCE = 60.0

log = logging.getLogger(__name__)


class ReleaseCard:
    """Posts a release's card once, then keeps it in step with the release record."""

    def __init__(self, ctx: ReleaseContext, schedule: ReleaseSchedule) -> None:
        self.ctx = ctx
        self.schedule = schedule
        self._busy: set[str] = set()  # releases whose card is being refreshed here
        self._again: set[str] = set()  # … and asked for again meanwhile
        self._refused: dict[str, str] = {}  # release → the digest Slack refused for good

    def render(self, release: Release) -> tuple[str, list[dict[str, Any]], str]:
        """(text, blocks, digest) of the card for `release` as it is now."""
        from bot.blocks import release as release_blocks

        view = ReleaseView(
            release=release,
            tickets=(),
            checklist=(),
            timezone=self.ctx.policy(release.service).timezone,
            thread_link=self.ctx.thread_link(release),
        )
        text, blocks = release_blocks.release_started(view)
        material = json.dumps([text, blocks], sort_keys=True, ensure_ascii=False)
        return text, blocks, hashlib.sha256(material.encode()).hexdigest()

    async def post(self, release: Release) -> Release:
        """Post the card in the service's channel: the release, with its thread. The caller
        holds the release's lock. A post Slack did not answer (a 429 in a busy channel, a
        lost answer) is looked for under its key and posted again only if it is not there
        (`post_once`), for up to POST_PATIENCE seconds: the filing's and the watch's words
        belong in its thread. Slack refusing it, or not taking it for that long, leaves
        the release without a thread (its messages then go to the channel)."""
        ctx = self.ctx
        svc = ctx.service(release.service)
        text, blocks, digest = self.render(release)
        try:
            ref = await posting.post_once(
                ctx.chat,
                svc.channel,
                key=f"release:{release.id}",
                text=text,
                blocks=blocks,
                give_up_after=POST_PATIENCE,
            )
        except RollbotError as err:
            log.warning("release card of %s not posted: %s", release.id, err.message)
            return release
        release = replace(release, channel=ref.channel, thread_ts=ref.ts)
        await ctx.store.save_release(release)
        await ctx.store.set_release_card_digest(release.id, digest)
        return release

    async def refresh(self, release_id: str) -> None:
        """Update the card if it does not show the release as it is now (coalesced)."""
        if release_id in self._busy:
            self._again.add(release_id)
            return
        self._busy.add(release_id)
        try:
            while True:
                self._again.discard(release_id)
                await self._update(release_id)
                if release_id not in self._again:
                    return
        finally:
            self._busy.discard(release_id)
            self._again.discard(release_id)

    async def reconcile(self) -> None:
        """Refresh every card whose release changed since Slack last took it (the leader,
        at every reconcile: a phase saved by a process that died before its update)."""
        ctx = self.ctx
        digests = await ctx.store.release_card_digests()
        for release in await ctx.store.list_releases():
            if release.id not in digests or release.service not in ctx.catalog:
                continue
            digest = self.render(release)[2]
            if digest != digests[release.id] and digest != self._refused.get(release.id):
                await self.refresh(release.id)

    async def _update(self, release_id: str) -> None:
        ctx = self.ctx
        release = await ctx.store.get_release(release_id)
        if release is None or not (release.channel and release.thread_ts):
            return
        text, blocks, digest = self.render(release)
        if digest == await ctx.store.release_card_digest(release_id):
            return
        try:
            await ctx.chat.update(
                MessageRef(release.channel, release.thread_ts), text=text, blocks=blocks
            )
        except TemporaryError as err:
            delay = err.delay or ctx.settings.releases.retry_seconds
            log.warning(
                "release card of %s not updated: %s (again in %.0f s)",
                release_id,
                err.message,
                delay,
            )
            await self.schedule.put(
                f"{release_id}:card", "card", {"release": release_id}, delay=delay
            )
            return
        except RollbotError as err:
            log.warning("release card of %s not updated: %s (not retried)", release_id, err)
            self._refused[release_id] = digest
            return
        self._refused.pop(release_id, None)
        await ctx.store.set_release_card_digest(release_id, digest)
