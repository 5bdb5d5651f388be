"""Tier 3: a full revert in Git, recorded.

The revert itself is done by people, not by rollbot. `Reverts.record_revert` records that
someone started it (from the card's revert modal): with Tier 1's guard (the on-call or the
owners group), once per card revision (`bot.cards.revert_key`: a second record, whoever
makes it — another person, a retried click, a second modal opened before the first was
submitted — is a duplicate saying who started the first, when, with its link), in the
audit log with the steps and the release SHA the card showed, as a line in the card's
thread and on the card itself (the card writes both) and to the listeners (the PagerDuty
notes).

`revert_plan` is the steps as the card shows them, for the modal; `already_started` says
who started the revert already recorded for a card's revision, if any, before the modal
is opened again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot.actions.pipeline import Pipeline, with_fallback
from bot.actions.values import ActionResult, RevertRequest
from bot.cards import RevertPlan, revert_key
from bot.core import policy
from bot.core.errors import InvalidRequest, RollbotError
from bot.core.model import RolloutState
from bot.core.ports import ActionRecord, Rollouts
from bot.core.tiers import is_revert_url

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)

#: How long a second record waits for a first one still being recorded, to name its link.
WINNER_WAIT_SECONDS = 2.0


def revision_card(cfg: ServiceSettings, revision: int) -> str:
    """The card key of the service's Rollout at `revision`."""
    return f"{cfg.namespace}/{cfg.rollout}@{revision}"


def revert_target(req: RevertRequest, cfg: ServiceSettings) -> str:
    """What a recorded revert is filed under: the Rollout, at the card's revision if any."""
    target = f"{cfg.namespace}/{cfg.rollout}"
    return f"{target}@{req.revision}" if req.revision is not None else target


class Reverts:
    def __init__(self, pipeline: Pipeline, *, rollouts: Rollouts) -> None:
        self._pipeline = pipeline
        self._rollouts = rollouts

    async def revert_plan(self, service: str, *, revision: int | None = None) -> RevertPlan:
        """Tier 3's steps for the card of `revision` (as the card shows them): the card's
        last known state, else the Rollout read now when it is still at that revision;
        else the steps with placeholders (the release SHA unknown)."""
        cfg = self._pipeline.service(service)
        cards = self._pipeline.cards
        state: RolloutState | None = None
        if revision is not None:
            state = cards.known_state(revision_card(cfg, revision))
        if state is None:
            try:
                live = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
            except RollbotError as err:
                log.warning("revert steps without the Rollout's state: %s", err.message)
            else:
                state = live if revision is None or live.revision == revision else None
        return cards.revert_plan(service, state)

    async def already_started(self, service: str, revision: int) -> str | None:
        """When a Tier 3 revert is already recorded for the card of `service` at `revision`
        (finished or still being recorded): what someone about to record another is told,
        who started it, when, with its link (mrkdwn). None when there is none."""
        cfg = self._pipeline.service(service)
        record = await self._pipeline.store.get_action(revert_key(revision_card(cfg, revision)))
        if record is None:
            return None
        return self._already_text(service, revision, record)

    def _already_text(self, service: str, revision: int | None, winner: ActionRecord) -> str:
        return self._pipeline.cards.revert_already_text(
            service=service, revision=revision, winner=winner
        )

    async def authorise_revert(self, req: RevertRequest) -> policy.Decision:
        """Whether `req.actor` may record a revert of the service (Tier 1's guard: the
        on-call or the owners group). A refusal is audited and raised as NotAuthorised,
        saying who may; an unknown service raises UnknownService naming the known ones."""
        cfg = self._pipeline.service(req.service)
        return await self._pipeline.guard(req, cfg, revert_target(req, cfg))

    async def record_revert(
        self, req: RevertRequest, *, decision: policy.Decision | None = None
    ) -> ActionResult:
        """Record that a Tier 3 revert was started: once per card revision (a second record
        is a `duplicate` whose message says who started the first, when, with its link),
        audited, a line in the card's thread, the card rendered again, and the listeners
        told (a PagerDuty note). `decision`: the authorisation already given for this
        request (else it is asked now)."""
        cfg = self._pipeline.service(req.service)
        card = revision_card(cfg, req.revision) if req.revision is not None else None
        return await self._pipeline.counted(
            req, req.action, self._record_revert(req, cfg, decision), card=card
        )

    async def _record_revert(
        self, req: RevertRequest, cfg: ServiceSettings, decision: policy.Decision | None
    ) -> ActionResult:
        pipeline = self._pipeline
        if not is_revert_url(req.url):
            raise InvalidRequest("Give the revert's commit or pull request URL (https://…).")
        if decision is None:
            decision = await self.authorise_revert(req)
        target = revert_target(req, cfg)
        plan = await self.revert_plan(req.service, revision=req.revision)
        revision = req.revision
        if revision is None and plan.state is not None:
            revision = plan.state.revision  # not from a card: the Rollout's revision now
        if revision is not None:
            key = revert_key(revision_card(cfg, revision))
        else:  # no revision known at all: once per submission
            key = f"revert:{target}:{req.submission or req.url}"
        lost = await pipeline.claim(req, target, key, None)
        if lost is not None:
            if lost.record is None:
                return lost
            winner = await self._settled(key, lost.record)
            message = self._already_text(req.service, revision, winner)
            return replace(lost, message=message, record=winner)
        detail: dict[str, Any] = {
            "idempotency_key": key,
            "authorised": decision.reason,
            "url": req.url,
            "note": req.note,
            "revision": req.revision,
            "sha": plan.sha,
            "steps": list(plan.steps),
            "submission": req.submission,
        }
        await pipeline.audit(req, target, "succeeded", before=plan.state, detail=detail)
        record = await pipeline.store.finish_action(key, status="succeeded", result=detail)
        # Best effort: the record is already kept.
        await pipeline.cards.revert_started(
            req.service,
            actor_id=req.actor.id,
            url=req.url,
            note=req.note,
            revision=revision,
            channel=req.channel,
            message_ts=req.message_ts,
            at=pipeline.now(),
        )
        message = pipeline.cards.revert_recorded_text(
            service=req.service, revision=req.revision, url=req.url, sha=plan.sha, note=req.note
        )
        return ActionResult(
            "succeeded", with_fallback(message, decision), record, before=plan.state
        )

    async def _settled(self, key: str, winner: ActionRecord) -> ActionRecord:
        """The first record once it has finished (it then has its link), waiting at most
        WINNER_WAIT_SECONDS for one still being recorded; else as it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WINNER_WAIT_SECONDS
        while winner.status == "running" and loop.time() < deadline:
            await asyncio.sleep(0.05)
            winner = await self._pipeline.store.get_action(key) or winner
        return winner
