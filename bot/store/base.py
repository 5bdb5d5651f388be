"""What every part of `SqlStore` shares: the engines, the clock, the dialect's INSERT.

`SqlStore` (in `bot.store.sql`) is one repository implementing one port, `bot.core.ports.Store`
(plus the webhook inbox, the outbox and the rest). Its methods are grouped by the tables they
own, one mixin class per module (`actions`, `cards`, `incidents`, `queues`, `dedup`,
`releases`, `leases`), and every mixin derives from `StoreBase`, defined here: the constructor, the
lifecycle (`close`, `ping`, `async with`) and the helpers they all use.

The writer is the engine itself (on SQLite every transaction it begins is `BEGIN IMMEDIATE`,
see `bot.store.engine`); `_reader` is the same engine asking for a deferred transaction, for
read-only work. `_engine`, `_reader`, `_clock` and `_last_seen_prune` are the store's own
state, protected members of the one class that its mixins (subclasses) use; nothing here is
imported under a private name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.errors import PermanentError
from bot.store.engine import BEGIN_OPTION

__all__ = ["RecordNotFound", "StoreBase", "dialect_insert", "utcnow"]


class RecordNotFound(PermanentError, LookupError):
    """An update named a row that does not exist (an action, card, webhook or outbox item)."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"no {kind} {key!r} in the store")
        self.kind, self.key = kind, key


def utcnow() -> datetime:
    return datetime.now(UTC)


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """An INSERT that knows ON CONFLICT, in `dialect` (the engine's `dialect.name`)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database was out of reach (down, restarting, the connection
    cut, the pool exhausted, SQLite locked past its busy timeout), rather than that the
    request itself was wrong: work that failed so is retried, not parked."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


class StoreBase:
    """The engines and clock of a `SqlStore`, and its lifecycle; see the module docstring."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        # Read-only work: SQLite may start a plain deferred transaction (a WAL snapshot) and
        # not queue behind writers; the option means nothing to PostgreSQL.
        self._reader = engine.execution_options(**{BEGIN_OPTION: "DEFERRED"})
        self._last_seen_prune: dict[str, datetime] = {}
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def close(self) -> None:
        await self._engine.dispose()

    def _prune_due(self, source: str, now: datetime, forget_after: timedelta) -> bool:
        """Whether the digests `source` has seen are due for pruning (at most every tenth
        of `forget_after`); if so, it counts as done now."""
        last = self._last_seen_prune.get(source)
        if last is not None and now - last < forget_after / 10:
            return False
        self._last_seen_prune[source] = now
        return True

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""
        async with self._reader.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated); raises when the
        database does not answer (readiness asks it instead of `ping`)."""
        async with self._reader.connect() as conn:
            exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
            if not exists:
                return None
            row = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).first()
        return None if row is None else str(row[0])

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
