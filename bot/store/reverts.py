"""Tier 3 reverts run by rollbot: the `SqlStore` methods on the `reverts` table (a mixin of
`SqlStore`, see `bot.store.base`).

One row per card (`bot.core.gitops.gitops_key`). `create_revert` inserts it once (a second
responder, a retried click: the first row comes back, `created` False). `advance_revert`
moves it with a compare-and-set on the state and version it was read at, in one statement:
two replicas or a step retried after a crash cannot both take the same step. What a step
changes besides the state goes with it, in the same statement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from bot.core.gitops import RevertCase, RevertState
from bot.store.base import StoreBase, dialect_insert
from bot.store.schema import reverts

__all__ = ["RevertsMixin"]

_COLUMNS = ("key", "service", "card_key", "state", "version")


def _data(case: RevertCase) -> dict[str, Any]:
    data = dataclasses.asdict(case)
    for name in _COLUMNS:
        data.pop(name)
    data["files"] = list(case.files)
    return data


def _case(row: Any) -> RevertCase:
    data = dict(row.data)
    known = {f.name for f in dataclasses.fields(RevertCase)}
    fields = {k: v for k, v in data.items() if k in known}  # a newer replica's extra keys
    fields["files"] = tuple(fields.get("files") or ())
    return RevertCase(
        key=row.key,
        service=row.service,
        card_key=row.card_key,
        state=RevertState(row.state),
        version=row.version,
        **fields,
    )


class RevertsMixin(StoreBase):
    """Tier 3 reverts (`RevertCase`), one per card."""

    async def create_revert(self, case: RevertCase) -> tuple[RevertCase, bool]:
        """Insert `case` unless its key exists; (the stored case, whether it was inserted)."""
        now = self._clock()
        case = dataclasses.replace(case, version=0, updated_at=now.isoformat())
        stmt = (
            dialect_insert(self.dialect, reverts)
            .values(
                key=case.key,
                service=case.service,
                card_key=case.card_key,
                state=case.state.value,
                version=0,
                data=_data(case),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[reverts.c.key])
            .returning(reverts.c.key)
        )
        async with self._engine.begin() as conn:
            inserted = (await conn.execute(stmt)).scalar_one_or_none() is not None
            row = (await conn.execute(sa.select(reverts).where(reverts.c.key == case.key))).one()
        return _case(row), inserted

    async def get_revert(self, key: str) -> RevertCase | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(reverts).where(reverts.c.key == key))).first()
        return None if row is None else _case(row)

    async def advance_revert(
        self, case: RevertCase, state: RevertState, **changes: Any
    ) -> RevertCase | None:
        """Move `case` (as it was read: its state and version) to `state` with `changes`;
        None, and nothing written, when someone moved it since."""
        now = self._clock()
        new = dataclasses.replace(
            case, state=state, version=case.version + 1, updated_at=now.isoformat(), **changes
        )
        stmt = (
            reverts.update()
            .where(
                reverts.c.key == case.key,
                reverts.c.state == case.state.value,
                reverts.c.version == case.version,
            )
            .values(state=state.value, version=new.version, data=_data(new), updated_at=now)
        )
        async with self._engine.begin() as conn:
            moved = (await conn.execute(stmt)).rowcount
        return new if moved == 1 else None

    async def reverts_in(self, states: Iterable[RevertState]) -> list[RevertCase]:
        """The reverts in any of `states`, oldest change first (what the loop drives)."""
        values = [s.value for s in states]
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(reverts)
                    .where(reverts.c.state.in_(values))
                    .order_by(reverts.c.updated_at, reverts.c.key)
                )
            ).all()
        return [_case(r) for r in rows]
