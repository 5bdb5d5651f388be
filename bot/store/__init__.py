"""rollbot's database: SQLAlchemy 2 (asyncio) + Alembic, SQLite by default, PostgreSQL for
several replicas.

    store = await open_store("sqlite:///rollbot.db")     # or postgresql://…
    claim = await store.claim_action(key, …)              # exactly once, across replicas
    ...
    await store.close()

`SqlStore` implements `bot.core.ports.Store` (plus the webhook inbox and the outbox); the
why of each choice is in `bot.store.sql`, `bot.store.engine` and `bot.store.audit`. Its
methods live in one module per area (actions and audit, cards, incidents, queues, dedup,
releases, leases), composed in `bot.store.sql` (see there).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import URL

from bot.store.base import RecordNotFound, unavailable
from bot.store.engine import DEFAULT_URL, async_url, create_engine
from bot.store.migrate import current_revision, head_revision, upgrade, upgrade_engine
from bot.store.queues import OutboxItem, WebhookRecord
from bot.store.sql import SqlStore

__all__ = [
    "DEFAULT_URL",
    "OutboxItem",
    "RecordNotFound",
    "SqlStore",
    "WebhookRecord",
    "async_url",
    "current_revision",
    "head_revision",
    "open_store",
    "unavailable",
    "upgrade",
]


async def open_store(
    url: str | URL = DEFAULT_URL,
    *,
    migrate: bool = True,
    clock: Callable[[], datetime] | None = None,
    busy_timeout: float | None = None,
) -> SqlStore:
    """Open the database at `url` (sync-driver URLs are upgraded to async ones), migrate it
    to head when `migrate`, and return the store. Close it with `await store.close()`.
    `busy_timeout`: how long a SQLite write waits for another writer's lock, in seconds
    (None: 30)."""
    engine = create_engine(url, busy_timeout=busy_timeout)
    try:
        if migrate:
            await upgrade_engine(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine) if clock is None else SqlStore(engine, clock=clock)
