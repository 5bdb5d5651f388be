"""At-most-once marks: notices sent, and signed requests seen; the `SqlStore` methods on the
`notices_sent` and `seen_requests` tables (a mixin of `SqlStore`, see `bot.store.base`).

Both are an `INSERT … ON CONFLICT DO NOTHING RETURNING` on the mark's key: a row back means
this caller marked it first, in one statement, across replicas. A mark whose work failed is
deleted again (`unmark_notice`, `forget_seen`) so that the retry counts as new. Where the
work is itself a write (a webhook kept in the inbox), the mark is made in the same
transaction instead (`mark_notice_in`, `mark_seen_in`, used by
`QueuesMixin.store_webhook_once`): both are written, or neither.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import StoreBase, dialect_insert
from bot.store.schema import notices_sent, seen_requests

__all__ = ["DedupMixin", "mark_notice_in", "mark_seen_in"]


async def mark_notice_in(
    conn: AsyncConnection, dialect: str, id: str, *, release_id: str, at: datetime
) -> bool:
    """`DedupMixin.mark_notice_sent` inside the caller's transaction."""
    stmt = (
        dialect_insert(dialect, notices_sent)
        .values(id=id, release_id=release_id, sent_at=at)
        .on_conflict_do_nothing(index_elements=[notices_sent.c.id])
        .returning(notices_sent.c.id)
    )
    return (await conn.execute(stmt)).scalar_one_or_none() is not None


async def mark_seen_in(
    conn: AsyncConnection,
    dialect: str,
    digest: str,
    *,
    source: str,
    at: datetime,
    forget_after: timedelta,
    prune: bool,
) -> bool:
    """`DedupMixin.first_seen` inside the caller's transaction; `prune`: delete every digest
    of `source` past its window first (else only this one's, if it is)."""
    if prune:  # now and then, not per request; each source keeps its own window
        await conn.execute(
            seen_requests.delete().where(
                seen_requests.c.source == source, seen_requests.c.seen_at < at - forget_after
            )
        )
    else:
        # Past its window a digest is new again, pruned or not.
        await conn.execute(
            seen_requests.delete().where(
                seen_requests.c.digest == digest, seen_requests.c.seen_at < at - forget_after
            )
        )
    stmt = (
        dialect_insert(dialect, seen_requests)
        .values(digest=digest, source=source, seen_at=at)
        .on_conflict_do_nothing(index_elements=[seen_requests.c.digest])
        .returning(seen_requests.c.digest)
    )
    return (await conn.execute(stmt)).scalar_one_or_none() is not None


class DedupMixin(StoreBase):
    """Notices sent once; signed requests run once (a byte-for-byte replay runs nothing)."""

    # ── notices: each sent once ────────────────────────────────────────────────────────

    async def mark_notice_sent(self, id: str, *, release_id: str) -> bool:
        """True the first time `id` is marked; False when it was sent before."""
        async with self._engine.begin() as conn:
            return await mark_notice_in(
                conn, self.dialect, id, release_id=release_id, at=self._clock()
            )

    async def unmark_notice(self, id: str) -> None:
        """Forget a notice whose sending failed, so that it is tried again."""
        async with self._engine.begin() as conn:
            await conn.execute(notices_sent.delete().where(notices_sent.c.id == id))

    async def notice_sent(self, id: str) -> bool:
        return await self.notice_sent_at(id) is not None

    async def notice_sent_at(self, id: str) -> datetime | None:
        """When `id` was marked sent (UTC), or None when it was not."""
        async with self._reader.begin() as conn:
            row = (
                await conn.execute(sa.select(notices_sent.c.sent_at).where(notices_sent.c.id == id))
            ).first()
        if row is None:
            return None
        at: datetime = row[0]
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    # ── signed requests seen: a byte-for-byte replay runs nothing ──────────────────────

    async def first_seen(self, digest: str, *, source: str, forget_after: timedelta) -> bool:
        """True the first time `digest` (a signed request's signature) is seen; False for a
        replay. Digests older than `forget_after` (longer than the sender's replay window,
        after which the signature check refuses the request anyway) are deleted here, at most
        every tenth of `forget_after`, so the table stays small."""
        now = self._clock()
        prune = self._prune_due(source, now, forget_after)
        async with self._engine.begin() as conn:
            return await mark_seen_in(
                conn,
                self.dialect,
                digest,
                source=source,
                at=now,
                forget_after=forget_after,
                prune=prune,
            )

    async def forget_seen(self, digest: str) -> None:
        """Forget `digest` (its request could not be kept, so its sender's retry is new)."""
        async with self._engine.begin() as conn:
            await conn.execute(seen_requests.delete().where(seen_requests.c.digest == digest))
