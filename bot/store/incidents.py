"""Incidents, one per Rollout revision: the `SqlStore` methods on the `incidents` table (a
mixin of `SqlStore`, see `bot.store.base`).

The incident engine keeps its incidents in memory and writes each change through here; a
new leader loads the live ones (`load_incidents`) so a restart forgets nothing.

- `save_incident` is one upsert (`INSERT … ON CONFLICT (card_key) DO UPDATE`, both dialects
  speak it): two replicas saving the same incident at once leave one row, the last write
  whole. It writes every column but `pages`. `save_incidents` writes several in one
  transaction (the incident engine's group commit, `bot.incidents.writer`).
- `bump_incident_pages` is an atomic counter in SQL (`pages = pages + 1 … RETURNING`), as
  `bump_card_epoch` is; it is the only writer of `pages`.

How an incident maps to columns and back is `bot.store.codecs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from bot.core.model import Incident, IncidentState
from bot.core.ports import IncidentRecord
from bot.store.base import RecordNotFound, StoreBase, dialect_insert
from bot.store.codecs import incident_columns, incident_record
from bot.store.schema import incidents

__all__ = ["IncidentsMixin"]


class IncidentsMixin(StoreBase):
    """Incidents: saved whole, loaded by a new leader, and their re-page counters."""

    # ── incidents: one per Rollout revision ────────────────────────────────────────────

    async def save_incident(self, incident: Incident, alerts: Mapping[str, str]) -> None:
        """Insert the incident, or replace every column of its row but `pages`."""
        await self.save_incidents([(incident, alerts)])

    async def save_incidents(self, rows: Sequence[tuple[Incident, Mapping[str, str]]]) -> None:
        """`save_incident` for several incidents, in one transaction (one statement run for
        each row): an alert storm's changes to many incidents are one commit."""
        if not rows:
            return
        now = self._clock()
        values = [
            {**incident_columns(i, alerts), "updated_at": now, "pages": 0} for i, alerts in rows
        ]
        insert = dialect_insert(self.dialect, incidents)
        changes = {
            name: insert.excluded[name] for name in values[0] if name not in ("card_key", "pages")
        }
        stmt = insert.on_conflict_do_update(index_elements=[incidents.c.card_key], set_=changes)
        async with self._engine.begin() as conn:
            await conn.execute(stmt, values)

    async def load_incidents(self, *, since: datetime) -> list[IncidentRecord]:
        """Every incident not resolved, and those resolved at or after `since` (their
        `changed_at`); oldest `opened_at` first."""
        query = (
            sa.select(incidents)
            .where(
                sa.or_(
                    incidents.c.state != IncidentState.RESOLVED.value,
                    incidents.c.changed_at >= since,
                )
            )
            .order_by(incidents.c.opened_at, incidents.c.card_key)
        )
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [incident_record(row._asdict()) for row in rows]

    async def get_incident(self, card_key: str) -> IncidentRecord | None:
        async with self._reader.begin() as conn:
            row = (
                await conn.execute(sa.select(incidents).where(incidents.c.card_key == card_key))
            ).first()
        return None if row is None else incident_record(row._asdict())

    async def open_incident(self, service: str) -> Incident | None:
        """The service's newest incident that is not resolved, or None: what any replica
        shows on the service's runbook page (the leader writes every change first)."""
        query = (
            sa.select(incidents)
            .where(
                incidents.c.service == service,
                incidents.c.state != IncidentState.RESOLVED.value,
            )
            .order_by(incidents.c.opened_at.desc(), incidents.c.card_key.desc())
            .limit(1)
        )
        async with self._reader.begin() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else incident_record(row._asdict()).incident

    async def bump_incident_pages(self, card_key: str) -> int:
        """One more re-page of the incident's PagerDuty incident; the new count.
        RecordNotFound when the incident was never saved."""
        async with self._engine.begin() as conn:
            pages = (
                await conn.execute(
                    incidents.update()
                    .where(incidents.c.card_key == card_key)
                    .values(pages=incidents.c.pages + 1, updated_at=self._clock())
                    .returning(incidents.c.pages)
                )
            ).scalar_one_or_none()
        if pages is None:
            raise RecordNotFound("incident", card_key)
        return int(pages)
