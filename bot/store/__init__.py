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
from pathlib import Path

from sqlalchemy.engine import URL

from bot.core.errors import RollbotError
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
    existing: bool = False,
) -> SqlStore:
    """Open the database at `url` (sync-driver URLs are upgraded to async ones), migrate it
    to head when `migrate`, and return the store. Close it with `await store.close()`.
    `busy_timeout`: how long a SQLite write waits for another writer's lock, in seconds
    (None: 30). `existing`: the database must be there already (a SQLite file is never
    created; one without rollbot's tables is refused): for the commands that only read it,
    such as ``rollbot audit verify`` after a restore. Raises RollbotError saying so."""
    if existing:
        _must_exist(url)
    engine = create_engine(url, busy_timeout=busy_timeout)
    try:
        if migrate:
            await upgrade_engine(engine)
    except BaseException:
        await engine.dispose()
        raise
    store = SqlStore(engine) if clock is None else SqlStore(engine, clock=clock)
    if existing and await store.schema_revision() is None:
        await store.close()
        raise RollbotError(
            f"no rollbot database at {async_url(url).render_as_string(hide_password=True)}: "
            "it has no rollbot tables (a wrong database.url, or a restore that is not done)"
        )
    return store


def _must_exist(url: str | URL) -> None:
    """A SQLite file named by `url` exists (SQLite would create an empty one)."""
    u = async_url(url)
    name = u.database
    if u.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return
    if "mode=memory" in str(u.query) or Path(name).exists():
        return
    raise RollbotError(f"no rollbot database at {name}: the file does not exist")
