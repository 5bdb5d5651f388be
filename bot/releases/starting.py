"""Starting a release, once per `service@version`, from `/release start`, `rollbot release
start` (CI) or the watch:

    start ─► the Rollout read: its revision of this version aborted? refused, nothing done
          ─► release record (once) ─► audit, ticket records (pending), card + thread in Slack
          └► file the tickets ─► bind to the Rollout if it runs the version ─► schedule

A second start of the same version gets the first one back. The owner (the tickets'
assignee, the one reminders mention) is resolved here from `@user`, an email, the
catalog or the starter.

A start on a revision the cluster already aborted is refused (`RevisionAborted`): nothing
is recorded and nothing is filed in Jira, and the answer says what state the revision is
in and how to go on: retry the rollout, then start the release again (the watch starts it
by itself when the service has `release.auto_start`), or start the next version. This is
what a release manager expects: an aborted revision serves no traffic, so it has left no
flag, migration or legacy code behind to clean up yet; filing tickets for it would only
make work (closing them by hand) and stop their clocks at once. Starting after the retry
dates the tickets from the retry, as a retry of a release started earlier does. When the
Rollout cannot be read, the start goes on (the watch binds the release later); a revision
aborted after the start stops the release's clocks as before.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.core import cleanup
from bot.core.errors import InvalidRequest, RollbotError
from bot.core.model import Actor, AuditEntry, Release, ReleasePhase, ReleaseView, RolloutState
from bot.releases.card import ReleaseCard
from bot.releases.context import ReleaseContext
from bot.releases.filing import TicketFiling
from bot.releases.schedule import ReleaseSchedule
from bot.releases.tracking import RolloutTracking
from bot.releases.views import ReleaseViews
from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

# The image tag; 64 keeps every scheduler job id within APScheduler's 191 characters.
_VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")


class RevisionAborted(InvalidRequest):
    """`/release start` of a version whose Rollout revision the cluster aborted: refused,
    nothing recorded or filed. The message says so and how to go on."""


class ReleaseStarter:
    """Records a release once, opens its thread, then files, binds and schedules it."""

    def __init__(
        self,
        ctx: ReleaseContext,
        *,
        views: ReleaseViews,
        filing: TicketFiling,
        tracking: RolloutTracking,
        schedule: ReleaseSchedule,
        card: ReleaseCard,
    ) -> None:
        self.ctx = ctx
        self.views = views
        self.filing = filing
        self.tracking = tracking
        self.schedule = schedule
        self.card = card

    async def start(
        self, service: str, version: str, *, actor: Actor, owner: str | None = None
    ) -> tuple[bool, ReleaseView]:
        """Start `service` `version` once. (False, the existing one) when started before;
        `RevisionAborted` when the Rollout's revision of `version` was aborted."""
        ctx = self.ctx
        svc = ctx.service(service)
        version = version.strip()
        if not _VERSION.fullmatch(version):
            raise InvalidRequest(
                f"`{version[:64]}` is not a version (1–64 of letters, digits and `._+-`; "
                "the image tag the Rollout runs)."
            )
        existing = await ctx.store.get_release(cleanup.release_id(service, version))
        if existing is not None:
            return False, await self.views.view(existing, with_checklist=False)
        await self._refuse_aborted(svc, service, version, actor)
        now = ctx.clock.now()
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
        async with ctx.lock(release.id):
            created, release = await ctx.store.create_release(release)
            if not created:
                return False, await self.views.view(release, with_checklist=False)
            release = await self._record_start(release, actor, owner_email)
        await self.filing.file_tickets(release.id)
        # Bind to the Rollout now if it already runs this version (CI may start the
        # release after the sync); the watch does it otherwise.
        await self.tracking.observe_now(release)
        await self.schedule.reconcile(release.id)
        return True, await self.views.view(await ctx.get(release.id), with_checklist=False)

    async def _refuse_aborted(
        self, svc: ServiceSettings, service: str, version: str, actor: Actor
    ) -> None:
        """Raise `RevisionAborted` when the Rollout runs `version` and was aborted."""
        ctx = self.ctx
        try:
            state = await ctx.rollouts.get_state(svc.namespace, svc.rollout)
        except RollbotError as err:
            log.info("release %s@%s: Rollout not read at start: %s", service, version, err)
            return
        obs = self.tracking.observation(state)
        if not (state.aborted and obs.version == version):
            return
        await ctx.store.append_audit(
            AuditEntry(
                at=ctx.clock.now(),
                actor=actor.id,
                action="release.start",
                target=cleanup.release_id(service, version),
                result="refused",
                detail={"source": actor.source, "by": actor.name, "revision": state.revision},
            )
        )
        raise RevisionAborted(self._aborted_text(svc, service, version, state, obs))

    def _aborted_text(
        self,
        svc: ServiceSettings,
        service: str,
        version: str,
        state: RolloutState,
        obs: cleanup.RolloutObservation,
    ) -> str:
        slack = self.ctx.settings.slack
        stable = f"the stable version {obs.stable_version}" if obs.stable_version else "stable"
        again = (
            "rollbot starts the release by itself once the retry runs (`release.auto_start`)"
            if svc.release.auto_start
            else f"then run `{slack.release_command} start {service} {version}` again"
        )
        return (
            f"{service} {version} is revision {state.revision} of the Rollout "
            f"`{svc.namespace}/{svc.rollout}`, and the cluster aborted it: {stable} serves "
            "all the traffic. Nothing was recorded and no cleanup tickets were filed: an "
            "aborted revision ships nothing, so it has left no cleanup behind yet. To go on, "
            f"retry the rollout (`{slack.command} {service} retry`) and {again}; or fix "
            f"forward and start the next version once the Rollout runs it."
        )

    async def _record_start(
        self, release: Release, actor: Actor, owner_email: str | None
    ) -> Release:
        ctx = self.ctx
        now = release.started_at
        await ctx.store.append_audit(
            AuditEntry(
                at=now,
                actor=actor.id,
                action="release.start",
                target=release.id,
                result="succeeded",
                detail={"source": actor.source, "owner": owner_email, "by": actor.name},
            )
        )
        for planned in ctx.plan(release):
            await ctx.store.ensure_ticket(release.id, planned.kind.value, label=planned.label)
        return await self.card.post(release)

    async def _owner(
        self, svc: ServiceSettings, owner: str | None, actor: Actor
    ) -> tuple[str | None, str | None]:
        """(Jira assignee, Slack user) from `@user`, an email, the catalog or the starter."""
        chat = self.ctx.chat
        if owner:
            owner = owner.strip()
            if owner.startswith("<@") and owner.endswith(">"):
                user = owner[2:-1].split("|", 1)[0]
                return await _safe(chat.user_email(user)), user
            if "@" in owner:
                return owner, await _safe(chat.user_id_by_email(owner))
            return owner, None  # a Jira account id or user name
        configured = svc.owners.jira_assignee
        if configured:
            slack = await _safe(chat.user_id_by_email(configured)) if "@" in configured else None
            return configured, slack
        if actor.source in ("slack", "slash-command") and actor.id:
            return await _safe(chat.user_email(actor.id)), actor.id
        return None, None


async def _safe(awaitable: Any) -> Any:
    try:
        return await awaitable
    except RollbotError as err:
        log.warning("owner lookup failed: %s", err.message)
        return None
