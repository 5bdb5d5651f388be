"""What every part of the release engine shares: its ports (store, chat, Rollouts, Jira,
flags, PagerDuty, scheduler, clock), the service catalog and the cleanup policy read from
it, one lock per release, the links a release's messages carry, and a line said in the
release thread.

Starting, filing, tracking, the checklist, the follow-ups and the schedule are separate
collaborators (see bot.releases.engine); they hold one `ReleaseContext` between them, so a
release's lock is the same lock whoever takes it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from bot.core import cleanup
from bot.core.errors import RollbotError, TargetNotFound, UnknownService
from bot.core.model import Release
from bot.core.ports import Chat, Flags, Rollouts, Tickets
from bot.runtime.scheduler import Clock, JobScheduler
from bot.settings import ServiceSettings, Settings
from bot.store import SqlStore

log = logging.getLogger(__name__)


class ReleaseContext:
    """The engine's ports and catalog, its per-release locks, its links and its thread."""

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

    # ── the catalog ─────────────────────────────────────────────────────────────────────

    def service(self, name: str) -> ServiceSettings:
        """The service's settings; UnknownService when it is not in the catalog."""
        svc = self.catalog.get(name)
        if svc is None:
            raise UnknownService(name, self.catalog)
        return svc

    def policy(self, service: str) -> cleanup.CleanupPolicy:
        r = self.service(service).release
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
        svc = self.service(service)
        return cleanup.CleanupSubject(
            release_flag=svc.flags.release,
            experiment_flag=svc.flags.experiment,
            legacy_code=svc.release.legacy_code,
            contract_step=svc.release.contract_step,
        )

    def plan(self, release: Release) -> list[cleanup.PlannedTicket]:
        return cleanup.plan(release, self.subject(release.service), self.policy(release.service))

    # ── releases ────────────────────────────────────────────────────────────────────────

    def lock(self, release_id: str) -> asyncio.Lock:
        """The release's one lock: its record is read, changed and saved under it."""
        return self._locks.setdefault(release_id, asyncio.Lock())

    async def get(self, release_id: str) -> Release:
        release = await self.store.get_release(release_id)
        if release is None:
            raise TargetNotFound("release", "-", release_id)
        return release

    def thread_link(self, release: Release) -> str | None:
        if not (release.channel and release.thread_ts and self.slack_team_url):
            return None
        ts = release.thread_ts.replace(".", "")
        return f"{self.slack_team_url}/archives/{release.channel}/p{ts}"

    def links(self, release: Release) -> dict[str, str]:
        """The links a cleanup ticket's description carries: runbook, Rollout, thread."""
        svc = self.service(release.service)
        links: dict[str, str] = {}
        if self.public_url:
            links["Runbook"] = f"{self.public_url}/runbooks/{release.service}"
        elif svc.runbook:
            links["Runbook"] = svc.runbook
        links["Rollout"] = f"kubectl argo rollouts get rollout {svc.rollout} -n {svc.namespace}"
        thread = self.thread_link(release)
        if thread:
            links["Release thread"] = thread
        return links

    # ── speaking ────────────────────────────────────────────────────────────────────────

    async def thread(self, release: Release, text: str, *, raise_errors: bool = False) -> None:
        """Say `text` in the release's thread (its service's channel before there is one)."""
        svc = self.service(release.service)
        try:
            await self.chat.post(
                release.channel or svc.channel, text=text, thread_ts=release.thread_ts
            )
        except RollbotError as err:
            if raise_errors:
                raise
            log.warning("release thread of %s: %s", release.id, err.message)
