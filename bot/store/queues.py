"""The two durable queues at rollbot's edges: the webhook inbox (with its poison bin) and the
outbox; the `SqlStore` methods on the `webhook_inbox` and `outbox` tables (a mixin of
`SqlStore`, see `bot.store.base`), and the records they return.

- **Inbox:** a webhook is stored before its 2xx is sent, and marked processed afterwards;
  what was stored but never processed (the replica died) is replayed from
  `pending_webhooks`. A delivery known by an id is stored with its at-most-once mark in
  one transaction (`store_webhook_once`): a failed write leaves neither behind. An
  authentic body that cannot be processed is kept as poison, stored already processed so
  that it is never replayed.
- **Outbox without row locking:** only the leader replica drains it (one voice), so
  `due_outbox` and `pending_outbox` are plain queries; add `FOR UPDATE SKIP LOCKED` if
  that ever changes. `enqueue` de-duplicates with `INSERT … ON CONFLICT DO NOTHING` on
  `dedup_key`. An item refused for good is parked (`outbox_park`): kept with why, its next
  attempt at `PARKED`, never due; `parked_outbox` lists them. `outbox_backlog` says how
  many wait and for how long (/metrics reads it at each scrape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.store import audit
from bot.store.base import RecordNotFound, StoreBase, dialect_insert
from bot.store.dedup import mark_notice_in, mark_seen_in
from bot.store.schema import outbox, webhook_inbox

__all__ = ["PARKED", "OutboxItem", "QueuesMixin", "WebhookRecord"]

#: `next_attempt_at` of an outbox item refused for good: kept, never due.
PARKED = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """One received webhook, stored before its 2xx was sent."""

    id: int
    source: str
    received_at: datetime
    headers: dict[str, Any]
    body: str
    processed_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outgoing call waiting to be made (or retried with backoff)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    done_at: datetime | None
    dedup_key: str | None


class QueuesMixin(StoreBase):
    """The webhook inbox (stored before the 2xx), the poison bin, and the outbox."""

    # ── webhook inbox: stored before the 2xx ───────────────────────────────────────────

    async def store_webhook(
        self, source: str, headers: Mapping[str, str], body: str | bytes
    ) -> int:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        async with self._engine.begin() as conn:
            new_id = (
                await conn.execute(
                    webhook_inbox.insert()
                    .values(
                        source=source, received_at=self._clock(), headers=dict(headers), body=text
                    )
                    .returning(webhook_inbox.c.id)
                )
            ).scalar_one()
        return int(new_id)

    async def store_webhooks(
        self, rows: Sequence[tuple[str, Mapping[str, str], str | bytes]]
    ) -> list[int]:
        """`store_webhook` for several (source, headers, body), in one transaction; their
        ids, in order (the Alertmanager receiver's group commit, `bot.runtime.batch`)."""
        if not rows:
            return []
        now = self._clock()
        values = [
            {
                "source": source,
                "received_at": now,
                "headers": dict(headers),
                "body": body.decode("utf-8") if isinstance(body, bytes) else body,
            }
            for source, headers, body in rows
        ]
        stmt = webhook_inbox.insert().returning(webhook_inbox.c.id, sort_by_parameter_order=True)
        async with self._engine.begin() as conn:
            ids = (await conn.execute(stmt, values)).scalars().all()
        return [int(i) for i in ids]

    async def store_webhook_once(
        self,
        source: str,
        headers: Mapping[str, str],
        body: str | bytes,
        *,
        seen: str,
        forget_after: timedelta | None = None,
    ) -> int | None:
        """`store_webhook`, unless the delivery `seen` names was stored before: then None and
        nothing written. The mark (a notice kept for good, or with `forget_after` a digest
        forgotten after that long) and the row are written in one transaction, so a failure
        (a locked or full database) leaves neither: the sender's retry is still new."""
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        now = self._clock()
        prune = forget_after is not None and self._prune_due(source, now, forget_after)
        async with self._engine.begin() as conn:
            if forget_after is None:
                first = await mark_notice_in(conn, self.dialect, seen, release_id=source, at=now)
            else:
                first = await mark_seen_in(
                    conn,
                    self.dialect,
                    seen,
                    source=source,
                    at=now,
                    forget_after=forget_after,
                    prune=prune,
                )
            if not first:
                return None
            new_id = (
                await conn.execute(
                    webhook_inbox.insert()
                    .values(source=source, received_at=now, headers=dict(headers), body=text)
                    .returning(webhook_inbox.c.id)
                )
            ).scalar_one()
        return int(new_id)

    async def mark_webhook_processed(self, id: int, error: str | None = None) -> None:
        """Done with it (with `error` when handling failed, kept for the operator)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                webhook_inbox.update()
                .where(webhook_inbox.c.id == id)
                .values(processed_at=self._clock(), error=error)
            )
        if result.rowcount == 0:
            raise RecordNotFound("webhook", id)

    async def mark_webhooks_processed(self, marks: Sequence[tuple[int, str | None]]) -> None:
        """`mark_webhook_processed` for several rows, (id, error) each, in one transaction
        (an alert storm's marks, grouped by `bot.runtime.batch.Batched`)."""
        if not marks:
            return
        now = self._clock()
        stmt = (
            webhook_inbox.update()
            .where(webhook_inbox.c.id == sa.bindparam("row_id"))
            .values(processed_at=now, error=sa.bindparam("why"))
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt, [{"row_id": id, "why": error} for id, error in marks])

    async def pending_webhooks(self, limit: int = 100) -> list[WebhookRecord]:
        """Stored but never processed (e.g. the replica died after its 2xx), oldest first."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(webhook_inbox)
                    .where(webhook_inbox.c.processed_at.is_(None))
                    .order_by(webhook_inbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [
            WebhookRecord(r.id, r.source, r.received_at, r.headers, r.body, r.processed_at, r.error)
            for r in rows
        ]

    async def store_poison(
        self, source: str, headers: Mapping[str, str], body: bytes, why: str
    ) -> int:
        """Keep an authentic body that cannot be processed: stored already processed (so
        it is never replayed), marked poison, with why. Bytes that are not UTF-8 and NUL
        characters (which PostgreSQL text refuses) are kept as backslash escapes."""
        text = body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        now = self._clock()
        async with self._engine.begin() as conn:
            new_id = (
                await conn.execute(
                    webhook_inbox.insert()
                    .values(
                        source=source,
                        received_at=now,
                        headers=dict(headers),
                        body=text,
                        processed_at=now,
                        error=f"poison: {why}",
                        poison=True,
                    )
                    .returning(webhook_inbox.c.id)
                )
            ).scalar_one()
        return int(new_id)

    async def poison_count(self, source: str | None = None) -> int:
        """How many poison bodies are kept (of `source`, or of all)."""
        query = sa.select(sa.func.count()).select_from(webhook_inbox).where(webhook_inbox.c.poison)
        if source is not None:
            query = query.where(webhook_inbox.c.source == source)
        async with self._reader.begin() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def get_webhook(self, id: int) -> WebhookRecord | None:
        async with self._reader.begin() as conn:
            r = (
                await conn.execute(sa.select(webhook_inbox).where(webhook_inbox.c.id == id))
            ).first()
        if r is None:
            return None
        return WebhookRecord(
            r.id, r.source, r.received_at, r.headers, r.body, r.processed_at, r.error
        )

    # ── outbox: outgoing calls retried with backoff ────────────────────────────────────

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None,
        *,
        not_before: datetime | None = None,
    ) -> bool:
        """Queue a call; False when `dedup_key` was queued before (nothing is added)."""
        now = self._clock()
        stmt = (
            dialect_insert(self.dialect, outbox)
            .values(
                kind=kind,
                payload=audit.plain_json(payload),
                attempts=0,
                next_attempt_at=not_before or now,
                dedup_key=dedup_key,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[outbox.c.dedup_key])
            .returning(outbox.c.id)  # a row back means inserted (rowcount is not portable)
        )
        async with self._engine.begin() as conn:
            new_id = (await conn.execute(stmt)).scalar_one_or_none()
        return new_id is not None

    async def due_outbox(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Items not done whose next attempt is at or before `now`, soonest first."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.done_at.is_(None), outbox.c.next_attempt_at <= now)
                    .order_by(outbox.c.next_attempt_at, outbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [_outbox_item(r) for r in rows]

    async def pending_outbox(self, limit: int = 500) -> list[OutboxItem]:
        """Items not done and not parked, due or not, in the order they were queued (the
        drainer keeps that order per PagerDuty incident)."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.done_at.is_(None), outbox.c.next_attempt_at < PARKED)
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [_outbox_item(r) for r in rows]

    async def outbox_backlog(self) -> tuple[int, float]:
        """(items waiting: not done, not parked; seconds the oldest of them has waited,
        since it was queued, 0 when none waits), for /metrics."""
        waiting = sa.and_(outbox.c.done_at.is_(None), outbox.c.next_attempt_at < PARKED)
        query = sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(waiting)
        async with self._reader.begin() as conn:
            count, oldest = (await conn.execute(query)).one()
        if not count or oldest is None:
            return 0, 0.0
        if oldest.tzinfo is None:  # SQLite hands an aggregate back as stored: naive UTC
            oldest = oldest.replace(tzinfo=UTC)
        return int(count), max(0.0, (self._clock() - oldest).total_seconds())

    async def parked_outbox(self) -> list[OutboxItem]:
        """Items refused for good (`outbox_park`), oldest first: kept, never retried."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.done_at.is_(None), outbox.c.next_attempt_at >= PARKED)
                    .order_by(outbox.c.id)
                )
            ).all()
        return [_outbox_item(r) for r in rows]

    async def outbox_done(self, id: int) -> None:
        await self._update_outbox(id, done_at=self._clock())

    async def outbox_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        await self._update_outbox(
            id, attempts=outbox.c.attempts + 1, last_error=error, next_attempt_at=next_attempt_at
        )

    async def outbox_park(self, id: int, error: str) -> None:
        """Refused for good: kept with why (`last_error`), never due again."""
        await self.outbox_retry(id, error, PARKED)

    async def outbox_due_now(self, now: datetime) -> int:
        """Every waiting item (not done, not parked) due at `now`, instead of at the end of
        its backoff: the destination answers again. Returns how many were brought forward."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                outbox.update()
                .where(
                    outbox.c.done_at.is_(None),
                    outbox.c.next_attempt_at > now,
                    outbox.c.next_attempt_at < PARKED,
                )
                .values(next_attempt_at=now)
            )
        return int(result.rowcount or 0)

    async def get_outbox(self, id: int) -> OutboxItem | None:
        async with self._reader.begin() as conn:
            r = (await conn.execute(sa.select(outbox).where(outbox.c.id == id))).first()
        return None if r is None else _outbox_item(r)

    async def _update_outbox(self, id: int, **values: Any) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(outbox.update().where(outbox.c.id == id).values(**values))
        if result.rowcount == 0:
            raise RecordNotFound("outbox item", id)


# ── rows → records ─────────────────────────────────────────────────────────────────────


def _outbox_item(r: sa.Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=r.id,
        kind=r.kind,
        payload=r.payload,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        last_error=r.last_error,
        done_at=r.done_at,
        dedup_key=r.dedup_key,
    )
