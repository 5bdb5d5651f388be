"""The one Slack card per Rollout revision, and its thread.

The watch feeds every Rollout change here. A Rollout that turns bad by itself gets its
card posted into the service's channel; once a card exists, every change updates it in
place (`chat.update`) and each change of the one-line summary adds a line to the thread
underneath, so the thread is the incident's timeline. Actions report here too.

Two rules keep Slack calm: a card is re-rendered only when its digest (the state that
matters, not the ever-changing age) differs, and updates for one card are serialised by a
per-card lock so a burst of watch events cannot interleave their posts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.core import rollouts as core_rollouts
from bot.core.model import MessageRef, RolloutState
from bot.core.ports import CardRecord, Chat, Store
from bot.slack import blocks

if TYPE_CHECKING:
    from bot.settings import ServiceSettings

log = logging.getLogger(__name__)


def card_key(state: RolloutState) -> str:
    return f"{state.namespace}/{state.name}@{state.revision}"


def summary_line(state: RolloutState) -> str:
    """One line saying where the Rollout is; a new thread line whenever it changes."""
    parts = [state.phase]
    if state.step_index is not None:
        parts.append(f"step {state.step_label}")
    parts.append(f"canary {state.canary_weight}%")
    if state.pause_reasons:
        parts.append("paused: " + ", ".join(state.pause_reasons))
    if state.analysis is not None:
        parts.append(f"analysis {state.analysis.status}")
    if state.aborted:
        parts.append("aborted")
    if state.message:
        parts.append(state.message)
    return " · ".join(parts)


@dataclass
class _CardMemory:
    outcome: blocks.Outcome | None = None
    last_line: str = ""
    digest: str = ""


class Cards:
    def __init__(
        self,
        *,
        chat: Chat,
        store: Store,
        catalog: Mapping[str, ServiceSettings],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._chat = chat
        self._store = store
        self._catalog = catalog
        self._now = now
        self._locks: dict[str, asyncio.Lock] = {}
        self._memory: dict[str, _CardMemory] = {}
        self._by_target = {(s.namespace, s.rollout): name for name, s in catalog.items()}

    def service_for(self, namespace: str, name: str) -> str | None:
        return self._by_target.get((namespace, name))

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _mem(self, key: str) -> _CardMemory:
        return self._memory.setdefault(key, _CardMemory())

    async def epoch(self, key: str) -> int:
        card = await self._store.get_card(key)
        return card.epoch if card else 0

    async def observe(self, state: RolloutState) -> CardRecord | None:
        """A Rollout changed: post its card if it went bad, update it if it exists."""
        service = self.service_for(state.namespace, state.name)
        if service is None:
            return None
        key = card_key(state)
        async with self._lock(key):
            card = await self._store.get_card(key)
            if card is None and core_rollouts.trouble(state) is None:
                return None
            card = await self._ensure_posted(service, state, card)
            if card is None:
                return None
            await self._refresh(service, state, card, line=summary_line(state))
            return card

    async def report(
        self, service: str, state: RolloutState, outcome: blocks.Outcome, line: str
    ) -> CardRecord | None:
        """An action finished (or failed): new epoch, outcome on the card, a thread line."""
        key = card_key(state)
        async with self._lock(key):
            self._mem(key).outcome = outcome
            card = await self._ensure_posted(service, state, await self._store.get_card(key))
            if card is None:
                await self._store.bump_card_epoch(key)
                return None
            card = replace(card, epoch=await self._store.bump_card_epoch(key))
            await self._refresh(service, state, card, line=line, always=True)
            return card

    def render(
        self, service: str, state: RolloutState, *, epoch: int, outcome: blocks.Outcome | None
    ) -> tuple[str, list[dict[str, Any]]]:
        trouble = core_rollouts.trouble(state)
        now = self._now()
        text = blocks.rollout_card_text(
            service=service, state=state, trouble=trouble, epoch=epoch, now=now, outcome=outcome
        )
        body = blocks.rollout_card(
            service=service, state=state, trouble=trouble, epoch=epoch, now=now, outcome=outcome
        )
        return text, body

    async def _ensure_posted(
        self, service: str, state: RolloutState, card: CardRecord | None
    ) -> CardRecord | None:
        """The card's record with a message ts, posting it if we own it and it has none.

        None means another replica claimed it and is posting it right now (it will own the
        updates); a claim left without a message for longer than `claim_grace` seconds (its
        poster died) is taken over.
        """
        key = card_key(state)
        cfg = self._catalog[service]
        if card is None:
            won, card = await self._store.claim_card(key, service=service, channel=cfg.channel)
            if not won and card.ts is None:
                return None
        if card.ts is not None:
            return card
        mem = self._mem(key)
        text, body = self.render(service, state, epoch=card.epoch, outcome=mem.outcome)
        ref = await self._chat.post(cfg.channel, text=text, blocks=body)
        mem.digest = _digest(state, mem.outcome, card.epoch)
        return await self._store.set_card_message(
            key, ts=ref.ts, digest=mem.digest, channel=ref.channel
        )

    async def _refresh(
        self,
        service: str,
        state: RolloutState,
        card: CardRecord,
        *,
        line: str,
        always: bool = False,
    ) -> None:
        key = card_key(state)
        mem = self._mem(key)
        digest = _digest(state, mem.outcome, card.epoch)
        if digest != card.digest and digest != mem.digest:
            text, body = self.render(service, state, epoch=card.epoch, outcome=mem.outcome)
            assert card.ts is not None
            await self._chat.update(MessageRef(card.channel, card.ts), text=text, blocks=body)
            await self._store.set_card_digest(key, digest)
        mem.digest = digest
        if always or line != mem.last_line:
            if not always:
                mem.last_line = line
            assert card.ts is not None
            await self._chat.post(
                card.channel,
                text=blocks.timeline_line(at=self._now(), text=line),
                thread_ts=card.ts,
            )


def _digest(state: RolloutState, outcome: blocks.Outcome | None, epoch: int) -> str:
    material = {
        "rev": state.revision,
        "phase": state.phase,
        "msg": state.message,
        "step": state.step_index,
        "weight": state.canary_weight,
        "aborted": state.aborted,
        "paused": [state.paused, state.controller_pause, list(state.pause_reasons)],
        "analysis": None
        if state.analysis is None
        else [state.analysis.status, state.analysis.message],
        "stable": [state.stable_rs, state.stable_revision, state.stable_image],
        "canary_image": state.canary_image,
        "outcome": None
        if outcome is None
        else [str(outcome.action), outcome.actor_id, outcome.at.isoformat(), outcome.verified],
        "epoch": epoch,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
