"""Database URLs and engines: one async engine per store, tuned per backend.

- URLs: `sqlite:///x.db` and `postgresql://…` (also `postgres://`, `postgresql+psycopg2://`)
  are upgraded to the async drivers rollbot ships with (`sqlite+aiosqlite`,
  `postgresql+psycopg`), so a user can paste the URL every other tool accepts.
- SQLite: WAL (readers never block the writer, the writer never blocks readers; switching a
  new file to it is retried, as SQLite refuses it at once while another connection holds
  the file), a busy timeout (30 s unless `busy_timeout` says otherwise: a second writer,
  in this process or another replica's, waits instead of failing with "database is
  locked"; a lock held longer fails the write, which a webhook answers 503),
  `synchronous=NORMAL` (durable across crashes of the process, the usual pairing with WAL),
  foreign keys on. Python's sqlite3 module opens transactions lazily and only before DML,
  which breaks transactional DDL and makes a read-then-write transaction fail without
  waiting when it upgrades its lock; so its own transaction handling is switched off and
  every transaction is opened explicitly here: `BEGIN IMMEDIATE` (take the write lock up
  front, honouring the busy timeout) unless the connection asks for `DEFERRED` through the
  `rollbot_sqlite_begin` execution option, which the store does for read-only work. One
  connection per engine (see `_sqlite_engine`).
- PostgreSQL: psycopg 3's async mode, `pool_pre_ping` so a replica survives a database
  restart.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_only

DEFAULT_URL = "sqlite+aiosqlite:///rollbot.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
BEGIN_OPTION = "rollbot_sqlite_begin"

_PG_NAMES = {"postgres", "postgresql"}
_PG_SYNC_DRIVERS = {"", "psycopg2", "psycopg", "psycopg_async", "pg8000"}


def _set_wal(cur: Any, busy_timeout: float) -> None:
    """`PRAGMA journal_mode = WAL`, retried: switching a new database to WAL needs it
    exclusively and SQLite answers "database is locked" at once, without the busy timeout,
    while another connection (a second replica starting) holds it. The waits yield to the
    event loop (this runs in SQLAlchemy's greenlet), so that other connection proceeds."""
    delay = 0.01
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as err:  # the driver's OperationalError, through the adapter
            if "database is locked" not in str(err) or time.monotonic() > deadline:
                raise
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, 0.25)


def async_url(url: str | URL) -> URL:
    """The URL with rollbot's async driver: aiosqlite for SQLite, psycopg 3 for PostgreSQL."""
    u = make_url(url) if isinstance(url, str) else url
    backend, _, driver = u.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return u.set(drivername="sqlite+aiosqlite")
    if backend in _PG_NAMES and driver in _PG_SYNC_DRIVERS:
        return u.set(drivername="postgresql+psycopg")
    return u


def sync_url(url: str | URL) -> URL:
    """The same database through a blocking driver (for one-off sync helpers)."""
    u = async_url(url)
    if u.drivername == "sqlite+aiosqlite":
        return u.set(drivername="sqlite")
    return u  # SQLAlchemy's psycopg dialect is sync unless used from create_async_engine


def _is_memory(u: URL) -> bool:
    return u.database in (None, "", ":memory:") or "mode=memory" in str(u.query)


def create_engine(
    url: str | URL, *, busy_timeout: float | None = None, **kwargs: Any
) -> AsyncEngine:
    """An async engine for `url`, with the per-backend settings described above.
    `busy_timeout`: SQLite's, in seconds (None: `SQLITE_BUSY_TIMEOUT_MS`)."""
    u = async_url(url)
    if u.get_backend_name() == "sqlite":
        seconds = SQLITE_BUSY_TIMEOUT_MS / 1000 if busy_timeout is None else busy_timeout
        return _sqlite_engine(u, busy_timeout=seconds, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(u, **kwargs)


def _sqlite_engine(u: URL, *, busy_timeout: float, **kwargs: Any) -> AsyncEngine:
    # One connection per engine, and coroutines queue for it in asyncio (fairly, without
    # polling). SQLite has one writer at a time anyway, so more connections buy no write
    # throughput; and with dozens of connections in one process we saw WAL lock storms:
    # readers and a writer each waiting out the whole busy timeout on the other. With one
    # connection per engine, the only lock contention left is between processes (replicas),
    # which the busy timeout handles. For :memory: it is also a must: every new connection
    # would be a new, empty database.
    if "poolclass" not in kwargs:
        kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
        kwargs.setdefault("pool_timeout", 60)
    if not _is_memory(u) and u.database and not u.database.startswith("file:"):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(u, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, see the docstring
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
        if not _is_memory(u):
            _set_wal(cur, busy_timeout)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
            raise ValueError(f"{BEGIN_OPTION}={mode!r}: IMMEDIATE, DEFERRED or EXCLUSIVE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
