"""Releases and their cleanup tickets: the `SqlStore` methods on the `releases` and
`release_tickets` tables (a mixin of `SqlStore`, see `bot.store.base`).

A release is recorded once (`INSERT … ON CONFLICT DO NOTHING` on its id) and then saved
whole; a ticket's record is created `pending` the first time it is asked for
(`ensure_ticket`) and updated column by column as it is filed.

The release card's digest (what the card in the channel was last updated to show) is kept
beside the release but outside `Release`: it is Slack's bookkeeping, not a fact of the
release, so `save_release` never writes it (a release saved from an older read cannot
undo a card update) and only `set_release_card_digest` does.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.core.model import Release, ReleasePhase
from bot.core.ports import TicketRecord
from bot.store.base import RecordNotFound, StoreBase, dialect_insert
from bot.store.schema import release_tickets, releases

__all__ = ["ReleasesMixin"]


class ReleasesMixin(StoreBase):
    """Releases (recorded once, saved whole) and their cleanup tickets."""

    # ── releases and cleanup tickets ───────────────────────────────────────────────────

    async def create_release(self, release: Release) -> tuple[bool, Release]:
        """Record a release once: (True, it) when new, else (False, the one recorded)."""
        stmt = (
            dialect_insert(self.dialect, releases)
            .values(**_release_values(release), updated_at=self._clock())
            .on_conflict_do_nothing(index_elements=[releases.c.id])
            .returning(releases.c.id)
        )
        async with self._engine.begin() as conn:
            inserted = (await conn.execute(stmt)).scalar_one_or_none()
        if inserted is not None:
            return True, release
        existing = await self.get_release(release.id)
        if existing is None:  # pragma: no cover - deleted in between; nothing deletes releases
            raise RecordNotFound("release", release.id)
        return False, existing

    async def get_release(self, id: str) -> Release | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(releases).where(releases.c.id == id))).first()
        return None if row is None else _release(row)

    async def save_release(self, release: Release) -> None:
        """Write every field of an existing release."""
        values = _release_values(release)
        values.pop("id")
        async with self._engine.begin() as conn:
            result = await conn.execute(
                releases.update()
                .where(releases.c.id == release.id)
                .values(**values, updated_at=self._clock())
            )
        if result.rowcount == 0:
            raise RecordNotFound("release", release.id)

    async def list_releases(
        self, *, service: str | None = None, active: bool = False
    ) -> list[Release]:
        """Releases, newest first; `active`: clocks running or tickets not all filed."""
        query = sa.select(releases).order_by(releases.c.started_at.desc(), releases.c.id)
        if service is not None:
            query = query.where(releases.c.service == service)
        if active:
            query = query.where(
                releases.c.phase.in_([p.value for p in ReleasePhase if p.clock_running])
            )
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_release(r) for r in rows]

    async def release_card_digest(self, release_id: str) -> str | None:
        """The digest of what the release's card was last updated to show (None: never)."""
        async with self._reader.begin() as conn:
            return (
                await conn.execute(
                    sa.select(releases.c.card_digest).where(releases.c.id == release_id)
                )
            ).scalar_one_or_none()

    async def release_card_digests(self) -> dict[str, str | None]:
        """Every release that has a card (a thread in Slack), with its card's digest."""
        query = sa.select(releases.c.id, releases.c.card_digest).where(
            releases.c.thread_ts.is_not(None)
        )
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return {row.id: row.card_digest for row in rows}

    async def set_release_card_digest(self, release_id: str, digest: str) -> None:
        """Record what the release's card now shows (after Slack took the post or update)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                releases.update()
                .where(releases.c.id == release_id)
                .values(card_digest=digest, updated_at=self._clock())
            )
        if result.rowcount == 0:
            raise RecordNotFound("release", release_id)

    async def ensure_ticket(self, release_id: str, kind: str, *, label: str) -> TicketRecord:
        """The ticket's record, created `pending` if it has none yet."""
        now = self._clock()
        stmt = (
            dialect_insert(self.dialect, release_tickets)
            .values(
                release_id=release_id,
                kind=kind,
                label=label,
                state="pending",
                provisional=True,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[release_tickets.c.release_id, release_tickets.c.kind]
            )
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
        found = await self.get_ticket(release_id, kind)
        assert found is not None
        return found

    async def get_ticket(self, release_id: str, kind: str) -> TicketRecord | None:
        async with self._reader.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(release_tickets).where(
                        release_tickets.c.release_id == release_id,
                        release_tickets.c.kind == kind,
                    )
                )
            ).first()
        return None if row is None else _ticket(row)

    async def tickets(self, release_id: str) -> list[TicketRecord]:
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(release_tickets)
                    .where(release_tickets.c.release_id == release_id)
                    .order_by(release_tickets.c.kind)
                )
            ).all()
        return [_ticket(r) for r in rows]

    async def update_ticket(self, release_id: str, kind: str, **values: Any) -> TicketRecord:
        """Set some columns of a ticket's record (state, key, url, due, provisional, status,
        status_category, error, attempted_at, filed_at)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                release_tickets.update()
                .where(release_tickets.c.release_id == release_id, release_tickets.c.kind == kind)
                .values(**values, updated_at=self._clock())
            )
        if result.rowcount == 0:
            raise RecordNotFound("release ticket", f"{release_id}/{kind}")
        found = await self.get_ticket(release_id, kind)
        assert found is not None
        return found


# ── rows → records ─────────────────────────────────────────────────────────────────────

_RELEASE_FIELDS = (
    "id",
    "service",
    "version",
    "phase",
    "source",
    "started_by",
    "owner",
    "owner_slack",
    "revision",
    "previous_version",
    "started_at",
    "clock_started_at",
    "full_rollout_at",
    "winner",
    "winner_at",
    "stopped_at",
    "channel",
    "thread_ts",
    "checklist_ts",
)


def _release_values(r: Release) -> dict[str, Any]:
    values = {name: getattr(r, name) for name in _RELEASE_FIELDS}
    values["phase"] = r.phase.value
    return values


def _release(row: sa.Row[Any]) -> Release:
    values = {name: getattr(row, name) for name in _RELEASE_FIELDS}
    values["phase"] = ReleasePhase(row.phase)
    return Release(**values)


def _ticket(r: sa.Row[Any]) -> TicketRecord:
    return TicketRecord(
        release_id=r.release_id,
        kind=r.kind,
        label=r.label,
        state=r.state,
        key=r.key,
        url=r.url,
        due=r.due,
        provisional=bool(r.provisional),
        status=r.status,
        status_category=r.status_category,
        error=r.error,
        attempted_at=r.attempted_at,
        filed_at=r.filed_at,
    )
