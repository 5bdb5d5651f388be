"""What the tests of each migration's way down and up again do alike: migrate down and
read the schema there, then migrate up again and check the database is at head with no
difference from the metadata the queries use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.store import SqlStore, current_revision, head_revision, open_store
from bot.store.migrate import downgrade, upgrade
from bot.store.schema import metadata


async def downgraded(store_url: str, revision: str) -> dict[str, list[str]]:
    """Migrate the database down to `revision`; its tables then, each with its columns."""
    await downgrade(store_url, revision)
    assert await asyncio.to_thread(current_revision, store_url) == revision
    store = await open_store(store_url, migrate=False)
    try:

        def shape(conn: sa.Connection) -> dict[str, list[str]]:
            inspector = sa.inspect(conn)
            return {
                table: [c["name"] for c in inspector.get_columns(table)]
                for table in inspector.get_table_names()
            }

        async with store.engine.connect() as conn:
            return await conn.run_sync(shape)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def upgraded(store_url: str) -> AsyncIterator[SqlStore]:
    """Migrate the database up again: a store on it, at head, its schema the metadata's."""
    await upgrade(store_url)
    store = await open_store(store_url)
    try:
        assert await asyncio.to_thread(current_revision, store_url) == head_revision()

        def diff(conn: sa.Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))

        async with store.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
        yield store
    finally:
        await store.close()
