"""Tier 3: a full revert in Git, recorded.

The revert itself is done by people, not by rollbot. `Reverts.record_revert` records that
someone started it (from the card's revert modal): with Tier 1's guard (the on-call or the
owners group), once per submission (a retry is a duplicate naming who recorded it), in the
audit log with the steps and the release SHA the card showed, as a line in the card's
thread (the card writes it) and to the listeners (the PagerDuty notes).

`revert_plan` is the steps as the card shows them, for the modal.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.actions.pipeline import Pipeline, with_fallback
from bot.actions.values import ActionResult, RevertRequest
from bot.cards import RevertPlan
from bot.core import policy
from bot.core.errors import InvalidRequest, RollbotError
from bot.core.model import RolloutState
from bot.core.ports import Rollouts
from bot.core.tiers import is_revert_url

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)


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
            state = cards.known_state(f"{cfg.namespace}/{cfg.rollout}@{revision}")
        if state is None:
            try:
                live = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
            except RollbotError as err:
                log.warning("revert steps without the Rollout's state: %s", err.message)
            else:
                state = live if revision is None or live.revision == revision else None
        return cards.revert_plan(service, state)

    async def authorise_revert(self, req: RevertRequest) -> policy.Decision:
        """Whether `req.actor` may record a revert of the service (Tier 1's guard: the
        on-call or the owners group). A refusal is audited and raised as NotAuthorised,
        saying who may; an unknown service raises UnknownService naming the known ones."""
        cfg = self._pipeline.service(req.service)
        return await self._pipeline.guard(req, cfg, revert_target(req, cfg))

    async def record_revert(
        self, req: RevertRequest, *, decision: policy.Decision | None = None
    ) -> ActionResult:
        """Record that a Tier 3 revert was started: once per submission (`req.submission`;
        a retry is a `duplicate` naming who recorded it), audited, a line in the card's
        thread, and the listeners told (a PagerDuty note). `decision`: the authorisation
        already given for this request (else it is asked now)."""
        cfg = self._pipeline.service(req.service)
        card = f"{cfg.namespace}/{cfg.rollout}@{req.revision}" if req.revision is not None else None
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
        key = f"revert:{target}:{req.submission or req.url}"
        lost = await pipeline.claim(req, target, key, None)
        if lost is not None:
            return lost
        plan = await self.revert_plan(req.service, revision=req.revision)
        detail: dict[str, Any] = {
            "idempotency_key": key,
            "authorised": decision.reason,
            "url": req.url,
            "note": req.note,
            "revision": req.revision,
            "sha": plan.sha,
            "steps": list(plan.steps),
        }
        await pipeline.audit(req, target, "succeeded", before=plan.state, detail=detail)
        record = await pipeline.store.finish_action(key, status="succeeded", result=detail)
        # Best effort: the record is already kept.
        await pipeline.cards.revert_started(
            req.service,
            actor_id=req.actor.id,
            url=req.url,
            note=req.note,
            revision=req.revision,
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
