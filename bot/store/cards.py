"""Status cards, one per Rollout revision: the `SqlStore` methods on the `cards` table (a
mixin of `SqlStore`, see `bot.store.base`).

`claim_card` is exactly once by a UNIQUE constraint, as `claim_action` is: the loser of the
INSERT reads and returns the winner's row. `bump_card_epoch` is an atomic counter in SQL
(`epoch = epoch + 1 … RETURNING`), never read-modify-write in Python.

A card also keeps what its outcome line and PagerDuty line show (`set_card_outcome`,
`set_card_pager`), so a new leader renders the same card; and what lets a standby act on
it while the leader alone edits the message (0006): the action gate (`set_card_gate`),
the service's breaker (`set_service_circuit`), and a mark asking the leader to render it
again (`mark_card_dirty`, taken atomically by `take_dirty_cards`). Its thread lines not yet in
Slack are rows of `card_lines` (0008) until Slack has them: leased by the process posting
them (`add_card_line`, `renew_card_line`), taken over by the leader once the lease runs out
(`take_card_lines`: one UPDATE … RETURNING, so two leaders cannot both take a line). The
outcome is a small JSON
object (`bot.store.codecs`); one this build cannot read (an action a newer build added) is
logged and read as None rather than making the card unreadable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.model import FlagState, Outcome
from bot.core.ports import CardLine, CardRecord
from bot.store.base import RecordNotFound, StoreBase
from bot.store.codecs import (
    flag_state_from_json,
    flag_state_to_json,
    outcome_from_json,
    outcome_to_json,
)
from bot.store.schema import card_lines, cards

log = logging.getLogger(__name__)

__all__ = ["CardsMixin"]


class CardsMixin(StoreBase):
    """One card per Rollout revision: its Slack message, digest, epoch, outcome and
    PagerDuty line."""

    # ── cards: one per Rollout revision ────────────────────────────────────────────────

    async def claim_card(
        self, card_key: str, *, service: str, channel: str
    ) -> tuple[bool, CardRecord]:
        now = self._clock()
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    cards.insert().values(
                        card_key=card_key,
                        service=service,
                        channel=channel,
                        ts=None,
                        digest="",
                        epoch=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = await self.get_card(card_key)
            if existing is None:
                raise
            return False, existing
        return True, CardRecord(
            card_key=card_key, service=service, channel=channel, ts=None, digest="", epoch=0
        )

    async def get_card(self, card_key: str) -> CardRecord | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(cards).where(cards.c.card_key == card_key))).first()
        return None if row is None else _card_record(row)

    async def set_card_message(
        self, card_key: str, *, ts: str, digest: str, channel: str | None = None
    ) -> CardRecord:
        """Record the posted message; `channel` is the id Slack answered with (chat.update
        needs the id, while the catalog may name the channel)."""
        values: dict[str, Any] = {"ts": ts, "digest": digest}
        if channel:
            values["channel"] = channel
        row = await self._update_card(card_key, **values)
        return _card_record(row)

    async def set_card_digest(self, card_key: str, digest: str) -> None:
        await self._update_card(card_key, digest=digest)

    async def bump_card_epoch(self, card_key: str) -> int:
        row = await self._update_card(card_key, epoch=cards.c.epoch + 1)
        return int(row.epoch)

    async def set_card_outcome(self, card_key: str, outcome: Outcome | None) -> None:
        """Record the last executed action's outcome (None: clear it)."""
        await self._update_card(
            card_key, outcome=sa.null() if outcome is None else outcome_to_json(outcome)
        )

    async def record_card_action(
        self,
        card_key: str,
        *,
        outcome: Outcome,
        gate: Mapping[str, Any] | None,
        mark_dirty: bool = False,
    ) -> CardRecord:
        """An action on the card finished: its outcome, the gate after it and the next
        epoch (buttons of the old one are stale), with the leader's mark when asked, in one
        statement; the card as written."""
        values: dict[str, Any] = {
            "outcome": outcome_to_json(outcome),
            "gate": sa.null() if gate is None else dict(gate),
            "epoch": cards.c.epoch + 1,
        }
        if mark_dirty:
            values["dirty_at"] = self._clock()
        return _card_record(await self._update_card(card_key, **values))

    async def set_card_pager(self, card_key: str, text: str | None) -> None:
        """Record the card's PagerDuty line (None: clear it)."""
        await self._update_card(card_key, pager=text)

    async def set_card_gate(self, card_key: str, gate: Mapping[str, Any] | None) -> None:
        """Record rollbot's own action on the card's Rollout (None: none)."""
        await self._update_card(card_key, gate=sa.null() if gate is None else dict(gate))

    async def set_service_circuit(
        self, service: str, circuit: FlagState, *, mark_dirty: bool = False
    ) -> list[str]:
        """Record the service's breaker on each of its cards (`mark_dirty`: and ask the
        leader to render them again); the keys of the cards changed."""
        values: dict[str, Any] = {
            "circuit": flag_state_to_json(circuit),
            "updated_at": self._clock(),
        }
        if mark_dirty:
            values["dirty_at"] = self._clock()
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                cards.update()
                .where(cards.c.service == service)
                .values(**values)
                .returning(cards.c.card_key)
            )
            return [row.card_key for row in rows]

    async def mark_card_dirty(self, card_key: str) -> None:
        """Ask the leader to render the card again (what it shows changed elsewhere)."""
        await self._update_card(card_key, dirty_at=self._clock())

    async def take_dirty_cards(self) -> list[str]:
        """The cards marked since the last call, unmarked in the same statement (a mark
        set after it is taken by the next call). The leader asks twice a second: a read
        first, so that asking when nothing is marked writes nothing (an UPDATE takes
        SQLite's write lock even when it matches no row)."""
        async with self._reader.begin() as conn:
            marked = await conn.execute(
                sa.select(cards.c.card_key).where(cards.c.dirty_at.is_not(None)).limit(1)
            )
            if marked.first() is None:
                return []
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                cards.update()
                .where(cards.c.dirty_at.is_not(None))
                .values(dirty_at=None)
                .returning(cards.c.card_key)
            )
            return sorted(row.card_key for row in rows)

    # ── thread lines not yet in Slack ──────────────────────────────────────────────────

    async def add_card_line(
        self, key: str, *, card_key: str, text: str, owner: str, lease: float
    ) -> None:
        now = self._clock()
        async with self._engine.begin() as conn:
            await conn.execute(
                card_lines.insert().values(
                    key=key,
                    card_key=card_key,
                    text=text,
                    created_at=now,
                    owner=owner,
                    lease_until=now + timedelta(seconds=lease),
                )
            )

    async def renew_card_line(self, key: str, *, owner: str, lease: float) -> bool:
        async with self._engine.begin() as conn:
            renewed = await conn.execute(
                card_lines.update()
                .where(card_lines.c.key == key, card_lines.c.owner == owner)
                .values(lease_until=self._clock() + timedelta(seconds=lease))
                .returning(card_lines.c.key)
            )
            return renewed.first() is not None

    async def drop_card_line(self, key: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(card_lines.delete().where(card_lines.c.key == key))

    async def take_card_lines(self, *, owner: str, lease: float) -> list[CardLine]:
        """Asked twice a second by the leader: a read first, so that nothing to take
        writes nothing (as `take_dirty_cards`)."""
        now = self._clock()
        expired = card_lines.c.lease_until < now
        async with self._reader.begin() as conn:
            found = await conn.execute(sa.select(card_lines.c.key).where(expired).limit(1))
            if found.first() is None:
                return []
        async with self._engine.begin() as conn:
            rows = await conn.execute(
                card_lines.update()
                .where(expired)
                .values(owner=owner, lease_until=now + timedelta(seconds=lease))
                .returning(
                    card_lines.c.key,
                    card_lines.c.card_key,
                    card_lines.c.text,
                    card_lines.c.created_at,
                )
            )
            taken = [CardLine(r.key, r.card_key, r.text, r.created_at) for r in rows]
        return sorted(taken, key=lambda line: (line.created_at, line.key))

    async def release_card_lines(self, owner: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                card_lines.update()
                .where(card_lines.c.owner == owner)
                .values(lease_until=self._clock() - timedelta(seconds=1))
            )

    async def _update_card(self, card_key: str, **values: Any) -> sa.Row[Any]:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    cards.update()
                    .where(cards.c.card_key == card_key)
                    .values(updated_at=self._clock(), **values)
                    .returning(*cards.c)
                )
            ).first()
        if row is None:
            raise RecordNotFound("card", card_key)
        return row


# ── rows → records ─────────────────────────────────────────────────────────────────────


def _card_record(row: sa.Row[Any]) -> CardRecord:
    return CardRecord(
        card_key=row.card_key,
        service=row.service,
        channel=row.channel,
        ts=row.ts,
        digest=row.digest,
        epoch=int(row.epoch),
        outcome=_outcome(row),
        pager=row.pager,
        gate=row.gate,
        circuit=_circuit(row),
    )


def _circuit(row: sa.Row[Any]) -> FlagState | None:
    if row.circuit is None:
        return None
    try:
        return flag_state_from_json(row.circuit)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("card %s: breaker unreadable, shown as unknown: %r", row.card_key, err)
        return None


def _outcome(row: sa.Row[Any]) -> Outcome | None:
    if row.outcome is None:
        return None
    try:
        return outcome_from_json(row.outcome)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("card %s: outcome unreadable, shown as none: %r", row.card_key, err)
        return None
