"""What the runbook pages need from the rest of rollbot, each as a narrow Protocol: the
responder (read and act through it, as a Slack click does), the open incident, the link
notices and audit entries in the store, the chat (for fresh links by DM), the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.actions import ActionRequest, ActionResult, FlagRequest
from bot.core.flags import FlagStatus
from bot.core.model import Incident, RolloutState

if TYPE_CHECKING:
    from bot.core.ports import Chat
    from bot.runtime.metrics import Metrics
    from bot.settings import ServiceSettings, Settings

__all__ = ["LinkNotices", "OpenIncidents", "PageResponder", "RunbookDeps"]


class PageResponder(Protocol):
    """The part of the responder a runbook page uses (`bot.actions.Responder`): it reads
    through it, and acts through it exactly as a Slack click does."""

    def service(self, name: str) -> ServiceSettings: ...

    async def status(self, service: str) -> tuple[RolloutState, Any]: ...

    async def flag_states(self, service: str) -> list[FlagStatus]: ...

    def circuit_flag(self, service: str) -> Any: ...

    async def handle(self, req: ActionRequest) -> ActionResult: ...

    async def handle_flag(self, req: FlagRequest) -> ActionResult: ...


class OpenIncidents(Protocol):
    """Where a page reads the service's open incident: the database (`bot.store.SqlStore`),
    so every replica shows the same, not only the leader whose engine keeps them."""

    async def open_incident(self, service: str) -> Incident | None: ...


class LinkNotices(Protocol):
    """Single use of links, in the store (`bot.store.SqlStore`)."""

    async def notice_sent_at(self, id: str) -> datetime | None: ...

    async def mark_notice_sent(self, id: str, *, release_id: str) -> bool: ...

    async def unmark_notice(self, id: str) -> None: ...

    async def audit_head(self) -> tuple[int, str]: ...

    async def audit_entries(self, *, since_seq: int = 0, limit: int | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class RunbookDeps:
    settings: Settings
    responder: PageResponder
    incidents: OpenIncidents
    store: LinkNotices
    chat: Chat
    metrics: Metrics
