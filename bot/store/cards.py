"""Status cards, one per Rollout revision: the `SqlStore` methods on the `cards` table (a
mixin of `SqlStore`, see `bot.store.base`).

`claim_card` is exactly once by a UNIQUE constraint, as `claim_action` is: the loser of the
INSERT reads and returns the winner's row. `bump_card_epoch` is an atomic counter in SQL
(`epoch = epoch + 1 … RETURNING`), never read-modify-write in Python.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.core.ports import CardRecord
from bot.store.base import RecordNotFound, StoreBase
from bot.store.schema import cards

__all__ = ["CardsMixin"]


class CardsMixin(StoreBase):
    """One card per Rollout revision: its Slack message, digest and epoch."""

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
    )
