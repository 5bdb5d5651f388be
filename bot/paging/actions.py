"""PagerDuty asking rollbot to act: acknowledging from Slack, and the PagerDuty-linked
runbook buttons (Incident Workflows) executed through the responder.

    /rollback SERVICE ack ─► the on-call policy (Tier 1's guard) ─► outbox: acknowledge + note
    workflow webhook ("Rollback Tier 1: abort") ─► PagerDuty user → email → Slack user ─►
        the same responder and policy as Slack ─► a note with the verified result

Built after the responder (it runs actions through it) and after the PagerDuty engine
(bot.paging.engine, whose outbox it queues on), which the responder tells of every action:
no collaborator is handed in after construction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.actions import ActionRequest, FlagRequest
from bot.core.errors import NotAuthorised, RollbotError, UnknownService
from bot.core.model import Actor, FlagAction, RolloutAction
from bot.core.policy import ACKNOWLEDGE
from bot.paging.engine import PagingEngine, parse_dedup_key

__all__ = ["PagerDutyActions", "workflow_action"]

log = logging.getLogger(__name__)


class Executor(Protocol):
    """The part of the responder PagerDuty's requests go through (`bot.actions.Responder`)."""

    async def authorise(self, service: str, action: str, actor: Actor) -> Any: ...

    async def handle(self, req: Any) -> Any: ...

    async def handle_flag(self, req: Any) -> Any: ...


class PagerDutyActions:
    def __init__(self, *, engine: PagingEngine, responder: Executor) -> None:
        self.engine = engine
        self.responder = responder

    async def acknowledge(self, service: str, actor: Actor) -> str:
        """Slack → PagerDuty: acknowledge the service's open incident. Returns what to say.

        Acknowledging stops the page's escalation, so it takes Tier 1's guard (the on-call
        or the owners group, bot.core.policy) before anything is queued for PagerDuty: a
        refusal is audited and raised as NotAuthorised, saying whom to ask."""
        if service not in self.engine.catalog:
            raise UnknownService(service, self.engine.catalog)
        if not self.engine.pages(service):
            return f"`{service}` does not page PagerDuty (no routing key configured)."
        await self.responder.authorise(service, ACKNOWLEDGE, actor)
        incident = self.engine.open_incident(service)
        if incident is None:
            return f"`{service}` has no open incident to acknowledge."
        key = await self.engine.key_now(service, incident.card_key)
        now = self.engine.now().isoformat()
        await self.engine.enqueue_event(
            f"ack:{key}:{actor.id}:{now}",
            {"action": "acknowledge", "service": service, "dedup_key": key},
        )
        await self.engine.enqueue_note(
            service,
            key,
            f"Acknowledged in Slack by {actor.name}.",
            f"pd-note:{key}:ack:{actor.id}:{now}",
        )
        return (
            f"Acknowledging the PagerDuty incident of `{service}` (revision {incident.revision})."
        )

    async def on_workflow(self, payload: dict[str, Any]) -> None:
        """An Incident Workflow (or custom incident action) asked for a rollback."""
        incident = payload.get("incident") or {}
        user = payload.get("user") or {}
        name = str(payload.get("action") or "")
        key = str(incident.get("incident_key") or "")
        incident_id = str(incident.get("id") or "")
        if key and incident_id:
            self.engine.remember_incident(key, incident_id)
        parsed = parse_dedup_key(key) if key else None
        service = parsed[0] if parsed else None
        if service is None and incident.get("service_id"):
            service = self.engine.service_by_pd_id(str(incident["service_id"]))
        action = workflow_action(name)

        async def refuse(why: str) -> None:
            log.warning("PagerDuty workflow %r refused: %s", name, why)
            if incident_id:
                await self.engine.note_now(incident_id, f"rollbot did nothing: {why}")

        if service is None or service not in self.engine.catalog:
            known = ", ".join(sorted(self.engine.catalog)) or "none"
            await refuse(
                f"this incident's service ({incident.get('service_id') or 'unknown'}) is not "
                f"in rollbot's catalog (known services: {known})."
            )
            return
        if action is None:
            await refuse(
                f"unknown action {name!r}; name the workflow after one of: "
                "'Rollback Tier 1: abort', 'Tier 2: open circuit', 'Tier 2: close circuit'."
            )
            return
        confirmed = await self._workflow_user(user, refuse)
        if confirmed is None:
            return
        email, who = confirmed
        slack_id = await self.engine.slack_user(email)
        if slack_id is None:
            await refuse(
                f"{who} ({email}) has no Slack account rollbot can map by email, "
                "so rollbot cannot tell whether they may act."
            )
            return
        actor = Actor(slack_id, who, source="pagerduty")
        try:
            if isinstance(action, RolloutAction):
                await self.responder.handle(ActionRequest(service, action, actor))
            else:
                await self.responder.handle_flag(FlagRequest(service, action, actor))
        except NotAuthorised as err:
            await refuse(f"{actor.name} may not do this: {err.message}")
        except RollbotError as err:
            await refuse(f"{name} failed: {err.message}")

    async def _workflow_user(
        self, user: dict[str, Any], refuse: Callable[[str], Awaitable[None]]
    ) -> tuple[str, str] | None:
        """(email, name) of the workflow's user as PagerDuty itself knows them, or None
        after refusing. The body's user is only a claim: whoever holds the workflow secret
        can write any email there. So the user is read by id through the REST API, and
        PagerDuty's email is the one used; a user PagerDuty does not know, or whose email
        differs from the body's, is refused."""
        user_id = str(user.get("id") or "")
        if not user_id:
            await refuse("the workflow request names no PagerDuty user id.")
            return None
        try:
            known = await self.engine.paging.user(user_id)
        except RollbotError as err:
            log.warning("PagerDuty user %s not read: %s", user_id, err.message)
            await refuse(
                f"PagerDuty does not confirm user {user_id} ({err.message}); nothing was run."
            )
            return None
        email = str(known.get("email") or "")
        claimed = str(user.get("email") or "")
        if not email:
            await refuse(f"PagerDuty user {user_id} has no email; rollbot cannot map them.")
            return None
        if claimed and claimed.casefold() != email.casefold():
            log.warning("PagerDuty workflow refused: the body's email is not user %s's", user_id)
            await refuse(
                f"the request's email for user {user_id} is not the one PagerDuty has; "
                "nothing was run."
            )
            return None
        return email, str(known.get("name") or email)


def workflow_action(name: str) -> RolloutAction | FlagAction | None:
    text = name.lower()
    if "abort" in text or "tier 1" in text or "tier1" in text:
        return RolloutAction.ABORT
    if "circuit" in text or "tier 2" in text or "tier2" in text:
        return FlagAction.CIRCUIT_CLOSE if "close" in text else FlagAction.CIRCUIT_OPEN
    return None
