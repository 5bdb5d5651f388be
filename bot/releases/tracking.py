"""Tracking a release against its Argo Rollout, and the experiment's winner.

    watch ─► advance(release, observation) ─► the release card says the new phase
                                           ├► bound: the checklist is posted
                                           ├► full rollout: due dates move to the real ones
                                           ├► abort / revert: comments, clocks stop
                                           └► retry: comments, clocks restart (provisional)
    /release winner ─► the experiment flag's removal is dated

The phases themselves (what an observation or a winner does to a release) are the pure
bot.core.cleanup; this module saves the new phase under the release's lock and does what
each event asks: an audit entry, the release card updated in place (bot.releases.card), a
comment on every ticket (once per event), a line in the thread, due dates moved, the
schedule reconciled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.core import cleanup, mrkdwn
from bot.core.errors import InvalidRequest, RollbotError
from bot.core.model import (
    Actor,
    AuditEntry,
    Release,
    ReleasePhase,
    ReleaseView,
    RolloutState,
    TicketKind,
)
from bot.releases.card import ReleaseCard
from bot.releases.context import ReleaseContext
from bot.releases.followups import FollowUps
from bot.releases.schedule import ReleaseSchedule
from bot.releases.views import ReleaseViews

log = logging.getLogger(__name__)


class StartRelease(Protocol):
    """How tracking starts a release the watch saw first (`ReleaseEngine.start`)."""

    def __call__(
        self, service: str, version: str, *, actor: Actor, owner: str | None = None
    ) -> Awaitable[tuple[bool, ReleaseView]]: ...


class RolloutTracking:
    """Moves releases through their phases as the Rollout (or a winner) says."""

    def __init__(
        self,
        ctx: ReleaseContext,
        *,
        views: ReleaseViews,
        followups: FollowUps,
        schedule: ReleaseSchedule,
        start: StartRelease,
        card: ReleaseCard,
    ) -> None:
        self.ctx = ctx
        self.views = views
        self.followups = followups
        self.schedule = schedule
        self.start = start
        self.card = card

    # ── the watch ───────────────────────────────────────────────────────────────────────

    async def on_rollout(self, service: str, state: RolloutState) -> None:
        """Advance every release of `service` with what the watch saw; auto-start one."""
        ctx = self.ctx
        svc = ctx.catalog.get(service)
        if svc is None:
            return
        obs = self.observation(state)
        if svc.release.auto_start and obs.version and not state.aborted:
            rid = cleanup.release_id(service, obs.version)
            if not state.fully_promoted and await ctx.store.get_release(rid) is None:
                try:
                    await self.start(
                        service,
                        obs.version,
                        actor=Actor("watch", "rollbot (watch)", source="watch"),
                    )
                except InvalidRequest as err:  # aborted meanwhile, a tag that is no version
                    log.info("release %s not started by the watch: %s", rid, err.message)
        for release in await ctx.store.list_releases(service=service):
            if release.phase is ReleasePhase.REVERTED:
                continue
            await self.advance(release.id, obs)

    async def observe_now(self, release: Release) -> None:
        """Read the release's Rollout now and advance the release with it (at start: CI
        may start a release after the Rollout already runs it)."""
        svc = self.ctx.service(release.service)
        try:
            state = await self.ctx.rollouts.get_state(svc.namespace, svc.rollout)
        except RollbotError as err:
            log.info("release %s: Rollout not read at start: %s", release.id, err.message)
            return
        await self.advance(release.id, self.observation(state))

    def observation(self, state: RolloutState) -> cleanup.RolloutObservation:
        return cleanup.RolloutObservation(
            revision=state.revision,
            version=cleanup.image_version(state.canary_image),
            stable_version=cleanup.image_version(state.stable_image),
            fully_promoted=state.fully_promoted and state.phase == "Healthy",
            aborted=state.aborted,
            at=self.ctx.clock.now(),
        )

    async def advance(self, release_id: str, obs: cleanup.RolloutObservation) -> None:
        ctx = self.ctx
        async with ctx.lock(release_id):
            release = await ctx.get(release_id)
            before = ctx.plan(release)
            after_release, events = cleanup.advance(release, obs)
            if not events:
                return
            await ctx.store.save_release(after_release)
        await self._on_events(after_release, before, events)

    async def _on_events(
        self,
        release: Release,
        before: Sequence[cleanup.PlannedTicket],
        events: Sequence[cleanup.ReleaseEvent],
    ) -> None:
        ctx = self.ctx
        E = cleanup.ReleaseEvent
        zone = ZoneInfo(ctx.policy(release.service).timezone)
        for event in events:
            await ctx.store.append_audit(
                AuditEntry(
                    at=ctx.clock.now(),
                    actor="rollbot",
                    action=f"release.{event.value}",
                    target=release.id,
                    result="succeeded",
                    detail={"revision": release.revision, "phase": release.phase.value},
                )
            )
        # The card first: it is what people look at, and Jira's comments can be slow.
        await self.card.refresh(release.id)
        if E.FULL_ROLLOUT in events:
            assert release.full_rollout_at is not None
            at = release.full_rollout_at.astimezone(zone)
            await self._comment_all(
                release,
                f"Full rollout of {release.service} {release.version} seen at "
                f"{at:%Y-%m-%d %H:%M %Z}: the due date now counts from it (was provisional).",
                event="full-rollout",
            )
            moved = await self.followups.move_dates(release.id)
            await ctx.thread(
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
            await ctx.thread(
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
            moved = await self.followups.move_dates(release.id)
            await ctx.thread(
                release,
                ":arrows_counterclockwise: Release retried: the clocks restart (due dates "
                f"provisional again{': ' + moved if moved else ''}).",
            )
        await self.schedule.reconcile(release.id)
        if E.BOUND in events or E.FULL_ROLLOUT in events:
            await self.views.post_checklist(release.id)

    async def _comment_all(self, release: Release, body: str, *, event: str) -> None:
        ctx = self.ctx
        if ctx.tickets is None:
            return
        for rec in await ctx.store.tickets(release.id):
            if rec.key is None:
                continue
            stamp = release.stopped_at or release.full_rollout_at or release.clock_started_at
            notice = f"{release.id}:comment:{event}:{int(stamp.timestamp())}:{rec.kind}"
            if await ctx.store.notice_sent(notice):
                continue
            try:
                await ctx.tickets.comment(rec.key, body)
            except RollbotError as err:
                log.warning("comment on %s not added: %s (retried)", rec.key, err.message)
                await self.schedule.put(
                    f"{notice}",
                    "comment",
                    {"release": release.id, "key": rec.key, "body": body, "notice": notice},
                )
                continue
            await ctx.store.mark_notice_sent(notice, release_id=release.id)

    # ── winner ──────────────────────────────────────────────────────────────────────────

    async def declare_winner(self, service: str, variant: str, *, actor: Actor) -> ReleaseView:
        ctx = self.ctx
        svc = ctx.service(service)
        if not svc.flags.experiment:
            raise InvalidRequest(
                f"`{service}` has no experiment flag (`services.{service}.flags.experiment`), "
                f"so there is no winner to declare."
            )
        releases = [
            r for r in await ctx.store.list_releases(service=service) if r.phase.clock_running
        ]
        if not releases:
            raise InvalidRequest(
                f"`{service}` has no active release. Start one with "
                f"`/release start {service} VERSION`."
            )
        release = releases[0]
        async with ctx.lock(release.id):
            release = await ctx.get(release.id)
            updated, events = cleanup.declare_winner(release, variant, ctx.clock.now())
            if events:
                await ctx.store.save_release(updated)
        if events:
            await ctx.store.append_audit(
                AuditEntry(
                    at=ctx.clock.now(),
                    actor=actor.id,
                    action="release.winner",
                    target=release.id,
                    result="succeeded",
                    detail={"variant": variant, "by": actor.name},
                )
            )
            moved = await self.followups.move_dates(release.id)
            await ctx.thread(
                updated,
                f":trophy: Winner `{mrkdwn.safe(variant, 64)}` declared by "
                f"{mrkdwn.safe(actor.name, 80)}: the experiment flag "
                f"`{svc.flags.experiment}` is due for removal "
                f"{self._due_of(updated, TicketKind.REMOVE_EXPERIMENT_FLAG)}"
                + (f" ({moved})" if moved else "")
                + ".",
            )
            await self.schedule.reconcile(release.id)
        return await self.views.view(await ctx.get(release.id))

    def _due_of(self, release: Release, kind: TicketKind) -> str:
        for p in self.ctx.plan(release):
            if p.kind is kind:
                if p.due is None:
                    return "when a winner is declared"
                return p.due.isoformat() + (" (provisional)" if p.provisional else "")
        return "never"
