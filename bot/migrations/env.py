"""Alembic environment for rollbot.

Two ways in:

- **In code** (`bot.store.migrate.upgrade`, `rollbot db upgrade`, `open_store(migrate=True)`):
  the caller opens the connection (async engine, `run_sync`) and hands it over in
  `config.attributes["connection"]`; nothing here touches logging or reads files.
- **Alembic's CLI** for developers (`alembic -c bot/migrations/alembic.ini …`): the URL comes
  from `-x url=…` or `ROLLBOT_DATABASE__URL`, normalised to an async driver like the bot does.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from bot.store.engine import DEFAULT_URL, create_engine
from bot.store.schema import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("ROLLBOT_DATABASE__URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_URL
    )


async def _run_cli_online() -> None:
    engine = create_engine(_url())
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure)
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
elif context.is_offline_mode():
    _run_offline()
else:
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    asyncio.run(_run_cli_online())
