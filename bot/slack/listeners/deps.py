"""What the Slack listeners are given: the responder, the chat, the work queue, and the
optional collaborators (releases, runbook links, PagerDuty acknowledgement)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.actions import Responder
from bot.actions.gitops import GitOpsReverts
from bot.core.links import IssuedLink
from bot.core.model import Actor, ReleaseView
from bot.core.ports import Chat
from bot.runtime.work import WorkQueue

__all__ = ["Deps", "ReleaseDesk"]


class ReleaseDesk(Protocol):
    """Releases and their cleanup tickets, as `/release` and the App Home use them.

    Errors are bot.core.errors: UnknownService (not in the catalog), InvalidRequest (e.g. a
    winner for a service without an experiment flag), TemporaryError/Unreachable.
    """

    async def start(
        self, service: str, version: str, *, actor: Actor, owner: str | None
    ) -> tuple[bool, ReleaseView]:
        """Record the release once: (True, it) when new, (False, the one recorded before).

        `owner` is `<@U123>` (a Slack user) or an email, as `/release start` parsed it."""
        ...

    async def status(self, service: str) -> list[ReleaseView]:
        """The service's releases, newest first; UnknownService when not in the catalog."""
        ...

    async def list_active(self) -> list[ReleaseView]:
        """Every release whose clocks still run or whose tickets are not all done."""
        ...

    async def declare_winner(self, service: str, variant: str, *, actor: Actor) -> ReleaseView:
        """The experiment's winner: dates the experiment flag's removal ticket."""
        ...


@dataclass(frozen=True)
class Deps:
    responder: Responder
    chat: Chat
    work: WorkQueue
    command: str = "/rollback"
    releases: ReleaseDesk | None = None  # None: `/release` answers that it is not enabled
    release_command: str = "/release"
    # `/rollback SERVICE runbook`: (service, user id, name) → a signed runbook-page link for
    # that person; raises InvalidRequest saying what is not set up. None: not offered.
    runbook_link: Callable[[str, str, str], IssuedLink] | None = None
    # Slack → PagerDuty: acknowledge the service's open incident; returns what to say.
    acknowledge: Callable[[str, Actor], Awaitable[str]] | None = None
    # Tier 3 run by rollbot (`tier3_start`, `tier3_approve`); None: no service has it.
    gitops: GitOpsReverts | None = None
    # A signed request's signature, or a Socket Mode envelope's id (`common.seen_as`) →
    # True the first time it is seen (shared by replicas: the store's `first_seen`); a slash
    # command's work runs only then. None: no check.
    first_seen: Callable[[str], Awaitable[bool]] | None = None
