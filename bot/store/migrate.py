"""Alembic, driven from code: the migrations ship inside the package (`bot/migrations`).

`upgrade(url)` is what `rollbot db upgrade` and `open_store(migrate=True)` run. It holds a
lock for the whole upgrade so that replicas starting together do not race each other's DDL:
on PostgreSQL a transaction-scoped advisory lock (DDL is transactional there, so the second
replica waits, then finds the schema at head and does nothing); on SQLite the `BEGIN
IMMEDIATE` that every write transaction takes (see `bot.store.engine`). `downgrade(url,
revision)` goes back down under the same lock (tests, and an operator rolling rollbot back).
A database at a revision this code does not know (a newer rollbot migrated it) is left as
it is: an older replica still starting during a rolling update, or rolled back to, serves
it, as `/readyz` says (`schema_problem`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from bot.store.engine import create_engine, sync_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x726F6C6C626F74  # "rollbot"

log = logging.getLogger(__name__)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of rollbot."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_problem(revision: str | None) -> str | None:
    """Why a database at `revision` cannot be served by this rollbot, or None: it must be
    at this version's head, or at a revision this version does not know (a newer rollbot
    migrated it during a rolling update; migrations only add, so the older code still
    works on it)."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if revision == head:
        return None
    if revision is None:
        return (
            f"database: not migrated (this rollbot needs revision {head}; run rollbot db upgrade)"
        )
    known = {r.revision for r in script.walk_revisions()}
    if revision not in known:
        return None  # newer than this code: a rolling update in progress
    return f"database: at revision {revision}, this rollbot needs {head} (run rollbot db upgrade)"


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (head by default)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


# How long a SQLite migration tries again while another process's holds the database.
SQLITE_MIGRATION_PATIENCE = 60.0


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate to `revision` in one transaction, one process at a time. On SQLite, a
    second process starting at once can be answered "database is locked" at its BEGIN even
    with a busy timeout (seen under load, while the first one's migration ran); nothing of
    its migration has run then (SQLite's DDL is transactional), so it tries again, and
    finds the database migrated."""
    delay = 0.05
    deadline = time.monotonic() + SQLITE_MIGRATION_PATIENCE
    while True:
        try:
            async with engine.begin() as conn:
                await _lock_migrations(conn)
                await conn.run_sync(_upgrade_sync, revision)
            return
        except OperationalError as err:
            locked = engine.dialect.name == "sqlite" and "database is locked" in str(err)
            if not locked or time.monotonic() > deadline:
                raise
            log.info("database locked by another process's migration: trying again")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (its newer tables and columns, and
    what they hold, are dropped)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await _lock_migrations(conn)
            await conn.run_sync(_downgrade_sync, revision)
    finally:
        await engine.dispose()


async def _lock_migrations(conn: AsyncConnection) -> None:
    """On PostgreSQL, wait for any other replica's migration (until this transaction ends);
    SQLite's `BEGIN IMMEDIATE` already holds its one write lock."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def _upgrade_sync(connection: sa.Connection, revision: str) -> None:
    if revision == "head":
        current = MigrationContext.configure(connection).get_current_revision()
        script = ScriptDirectory.from_config(alembic_config())
        if current is not None and current not in {r.revision for r in script.walk_revisions()}:
            # A newer rollbot migrated it (a rolling update, or a rollback of rollbot):
            # migrations only add, so this code serves it as it is (`schema_problem`).
            log.warning(
                "database at revision %s, newer than this rollbot's %s: left as it is",
                current,
                script.get_current_head(),
            )
            return
    command.upgrade(_connected_config(connection), revision)


def _downgrade_sync(connection: sa.Connection, revision: str) -> None:
    command.downgrade(_connected_config(connection), revision)


def _connected_config(connection: sa.Connection) -> Config:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at; None when it was never migrated.

    Blocking (a short sync connection), for the CLI and health checks outside an event loop.
    A SQLite file that does not exist yet is reported as None without being created.
    """
    u = sync_url(url)
    db = u.database or ""
    is_file = u.get_backend_name() == "sqlite" and db not in ("", ":memory:")
    if is_file and not db.startswith("file:") and not Path(db).expanduser().exists():
        return None
    engine = sa.create_engine(u, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
