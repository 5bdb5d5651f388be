"""Small shared state keyed by name: leases (one holder per name, how replicas elect their
leader) and watch cursors (where each watch resumes); the `SqlStore` methods on the `leases`
and `cursors` tables (a mixin of `SqlStore`, see `bot.store.base`).

Both are single upserts (`INSERT … ON CONFLICT DO UPDATE`), which both dialects speak: two
contenders for a lease cannot both win, and a cursor is never read-modify-written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.store.base import StoreBase, dialect_insert
from bot.store.schema import cursors, leases

__all__ = ["LeasesMixin"]


class LeasesMixin(StoreBase):
    """Leases (one holder per name) and watch cursors."""

    # ── leases: one holder per name ────────────────────────────────────────────────────

    async def acquire_lease(self, name: str, holder: str, *, ttl: float) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False while someone else
        holds an unexpired one. One statement, so two contenders cannot both win."""
        now = self._clock()
        expires = now + timedelta(seconds=ttl)
        stmt = (
            dialect_insert(self.dialect, leases)
            .values(name=name, holder=holder, acquired_at=now, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[leases.c.name],
                set_={"holder": holder, "expires_at": expires, "acquired_at": now},
                where=sa.or_(leases.c.holder == holder, leases.c.expires_at < now),
            )
            .returning(leases.c.holder)
        )
        async with self._engine.begin() as conn:
            won = (await conn.execute(stmt)).scalar_one_or_none()
        return won == holder

    async def release_lease(self, name: str, holder: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                leases.delete().where(leases.c.name == name, leases.c.holder == holder)
            )

    async def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(leases).where(leases.c.name == name))).first()
        return None if row is None else (row.holder, row.expires_at)

    # ── watch cursors ──────────────────────────────────────────────────────────────────

    async def get_cursor(self, kind: str, namespace: str) -> str | None:
        async with self._reader.begin() as conn:
            value = (
                await conn.execute(
                    sa.select(cursors.c.resource_version).where(
                        cursors.c.kind == kind, cursors.c.namespace == namespace
                    )
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None:
        now = self._clock()
        stmt = dialect_insert(self.dialect, cursors).values(
            kind=kind, namespace=namespace, resource_version=resource_version, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[cursors.c.kind, cursors.c.namespace],
            set_={"resource_version": resource_version, "updated_at": now},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
