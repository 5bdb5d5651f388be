"""Actions claimed exactly once, and the audit log: the `SqlStore` methods on the `actions`,
`audit_log` and `audit_head` tables (a mixin of `SqlStore`, see `bot.store.base`).

- **Exactly once = a UNIQUE constraint.** `claim_action` simply INSERTs (`ON CONFLICT DO
  NOTHING`); the database's unique index picks the winner and every loser inserts nothing,
  then reads and returns the winner's row (the why in full is in `bot.store.sql`).
- **One transaction per step of an action, audit included** (issue 17: no extra round
  trips on the click path). A loser's claim, the winner's row it reads and its `duplicate`
  audit entry (`duplicate=`) are one transaction; so are a finished action, its audit entry
  and the move of the card's (or flag's) epoch that lets the next click act
  (`finish_action(audit=, bump_epoch=)`). Either all of it is written or none: an action
  is never settled without its audit entry, nor its epoch left behind.
- **A claim left `running` by a process that died** is found by `running_actions(before=)`
  and settled with `finish_running_action`, an UPDATE guarded by `status = 'running'`: the
  leader's recovery and a late finish by the claimant cannot both settle it.
- **Audit appends are serialised on the single-row `audit_head` (seq, hash)**, read
  `SELECT … FOR UPDATE` (PostgreSQL) inside a `BEGIN IMMEDIATE` transaction (SQLite); the
  chain itself (canonical form, hashing, verification) is pure code in `bot.store.audit`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.model import AuditEntry
from bot.core.ports import ActionRecord, AuditRecord, AuditVerification, Claim, EpochBump
from bot.store import audit
from bot.store.base import RecordNotFound, StoreBase, dialect_insert
from bot.store.schema import actions, audit_head, audit_log, cards

__all__ = ["ActionsMixin"]

_PAGE = 1000


class ActionsMixin(StoreBase):
    """Actions claimed exactly once, and the append-only audit log (hash chain)."""

    # ── actions: exactly once ──────────────────────────────────────────────────────────

    async def claim_action(
        self,
        key: str,
        *,
        service: str,
        target: str,
        action: str,
        actor_id: str,
        actor_name: str,
        source: str,
        duplicate: Callable[[ActionRecord], AuditEntry] | None = None,
    ) -> Claim:
        """Claim `key` for this action, exactly once across coroutines and replicas; the
        winner's record when lost. `duplicate`: the audit entry of a lost claim, built from
        the winner's record and appended in the same transaction (one round trip)."""
        record = ActionRecord(
            key=key,
            service=service,
            target=target,
            action=action,
            actor_id=actor_id,
            actor_name=actor_name,
            source=source,
            status="running",
            requested_at=self._clock(),
            finished_at=None,
            result={},
        )
        insert = (
            dialect_insert(self.dialect, actions)
            .values(**_action_values(record))
            .on_conflict_do_nothing(index_elements=[actions.c.key])
            .returning(actions.c.key)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(insert)).first() is not None:
                return Claim(won=True, record=record)
            row = (await conn.execute(sa.select(actions).where(actions.c.key == key))).first()
            if row is None:  # the winner's row vanished: never expected, say so loudly
                raise RecordNotFound("action", key)
            winner = _action_record(row)
            if duplicate is not None:
                await _append_audit(conn, duplicate(winner))
        return Claim(won=False, record=winner)

    async def get_action(self, key: str) -> ActionRecord | None:
        return await self._action(key)

    async def _action(self, key: str) -> ActionRecord | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(actions).where(actions.c.key == key))).first()
        return None if row is None else _action_record(row)

    async def finish_action(
        self,
        key: str,
        *,
        status: str,
        result: dict[str, Any],
        audit_entry: AuditEntry | None = None,
        bump_epoch: EpochBump | None = None,
    ) -> ActionRecord:
        """Settle the claim `key`; in the same transaction, append `audit_entry` and move
        `bump_epoch`'s card epoch on (its record made at epoch 1 when it has none yet)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    actions.update()
                    .where(actions.c.key == key)
                    .values(
                        status=status, result=audit.plain_json(result), finished_at=self._clock()
                    )
                    .returning(*actions.c)
                )
            ).first()
            if row is None:  # nothing of it is written
                raise RecordNotFound("action", key)
            if audit_entry is not None:
                await _append_audit(conn, audit_entry)
            if bump_epoch is not None:
                await conn.execute(self._bump_epoch(bump_epoch))
        return _action_record(row)

    def _bump_epoch(self, bump: EpochBump) -> Any:
        """`epoch = epoch + 1` on the card, or its record at epoch 1 (one statement)."""
        now = self._clock()
        return (
            dialect_insert(self.dialect, cards)
            .values(
                card_key=bump.card_key,
                service=bump.service,
                channel=bump.channel,
                ts=None,
                digest="",
                epoch=1,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=[cards.c.card_key],
                set_={"epoch": cards.c.epoch + 1, "updated_at": now},
            )
        )

    async def running_actions(self, *, before: datetime) -> list[ActionRecord]:
        """Claims still `running` that were made before `before`, oldest first."""
        query = (
            sa.select(actions)
            .where(actions.c.status == "running", actions.c.requested_at < before)
            .order_by(actions.c.requested_at)
        )
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_action_record(r) for r in rows]

    async def finish_running_action(
        self, key: str, *, status: str, result: dict[str, Any]
    ) -> ActionRecord | None:
        """`finish_action` for a claim still `running`; None when it is not (finished by
        someone else meanwhile, or never claimed): then nothing is written."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    actions.update()
                    .where(actions.c.key == key, actions.c.status == "running")
                    .values(
                        status=status, result=audit.plain_json(result), finished_at=self._clock()
                    )
                    .returning(*actions.c)
                )
            ).first()
        return None if row is None else _action_record(row)

    # ── audit: append-only hash chain ──────────────────────────────────────────────────

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        async with self._engine.begin() as conn:
            return await _append_audit(conn, entry)

    async def audit_entries(
        self, *, since_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Entries with seq > `since_seq`, oldest first (at most `limit`)."""
        query = sa.select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_audit_record(r) for r in rows]

    async def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the last append: the value to anchor outside the database."""
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
        return int(row.seq), str(row.hash)

    async def verify_audit(self) -> AuditVerification:
        """Recompute the whole chain from one consistent snapshot, page by page."""
        conn: AsyncConnection
        async with self._reader.connect() as conn:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
                records: list[AuditRecord] = []
                last = 0
                while True:
                    page = (
                        await conn.execute(
                            sa.select(audit_log)
                            .where(audit_log.c.seq > last)
                            .order_by(audit_log.c.seq)
                            .limit(_PAGE)
                        )
                    ).all()
                    records.extend(_audit_record(r) for r in page)
                    if len(page) < _PAGE:
                        break
                    last = page[-1].seq
        return audit.verify_chain(records, head=(int(head.seq), str(head.hash)))


async def _append_audit(conn: AsyncConnection, entry: AuditEntry) -> AuditRecord:
    """Append `entry` to the chain inside the caller's write transaction: read the head
    (FOR UPDATE on PostgreSQL; SQLite's write lock is held since BEGIN IMMEDIATE), insert
    the row hashed onto it, move the head."""
    entry = audit.normalise(entry)
    head = (
        await conn.execute(
            sa.select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        )
    ).one()
    seq = head.seq + 1
    digest = audit.entry_hash(head.hash, seq, entry)
    await conn.execute(
        audit_log.insert().values(
            seq=seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            result=entry.result,
            before=entry.before,
            after=entry.after,
            duration_ms=entry.duration_ms,
            detail=entry.detail,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest))
    return AuditRecord(seq=seq, entry=entry, prev_hash=head.hash, hash=digest)


# ── rows → records ─────────────────────────────────────────────────────────────────────


def _action_values(r: ActionRecord) -> dict[str, Any]:
    return {
        "key": r.key,
        "service": r.service,
        "target": r.target,
        "action": r.action,
        "actor_id": r.actor_id,
        "actor_name": r.actor_name,
        "source": r.source,
        "status": r.status,
        "requested_at": r.requested_at,
        "finished_at": r.finished_at,
        "result": r.result,
    }


def _action_record(row: sa.Row[Any]) -> ActionRecord:
    return ActionRecord(
        key=row.key,
        service=row.service,
        target=row.target,
        action=row.action,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        source=row.source,
        status=row.status,
        requested_at=row.requested_at,
        finished_at=row.finished_at,
        result=row.result,
    )


def _audit_record(row: sa.Row[Any]) -> AuditRecord:
    entry = AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        result=row.result,
        before=row.before,
        after=row.after,
        duration_ms=row.duration_ms,
        detail=row.detail,
    )
    return AuditRecord(seq=int(row.seq), entry=entry, prev_hash=row.prev_hash, hash=row.hash)
