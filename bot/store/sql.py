"""`SqlStore`: the `Store` port on SQLAlchemy 2 (asyncio), for SQLite and PostgreSQL.

Why each choice:

- **Exactly once = a UNIQUE constraint.** `claim_action` and `claim_card` simply INSERT; the
  database's unique index picks the winner of a double click, a Slack retry, fifty
  coroutines or two replicas on two engines, and every loser gets an `IntegrityError`
  (`claim_card`) or inserts nothing (`claim_action`: `ON CONFLICT DO NOTHING`, both
  backends), then reads and returns the winner's row. No read-then-write window, no
  in-process lock that a second replica would not see.
- **Audit appends are serialised on a single-row `audit_head` (seq, hash).** Each append
  reads the head, hashes the entry onto it, inserts the row and moves the head, in one
  transaction. On PostgreSQL the head is read `SELECT … FOR UPDATE`, so a second appender
  (any engine, any replica) blocks until the first commits and then reads the new head:
  the chain stays linear. SQLite has a single writer per database and every write
  transaction here starts with `BEGIN IMMEDIATE`, which takes that lock before the head is
  read (a deferred transaction would read, then fail to upgrade its lock). Belt and braces:
  `seq` is the primary key and `prev_hash` is UNIQUE, so even a bypassed lock could not
  fork the chain, and triggers refuse UPDATE/DELETE on `audit_log` in the database itself.
  The head also lets `verify_audit` notice a truncated tail, which a chain alone cannot.
- **Atomic counters in SQL** (`epoch = epoch + 1 … RETURNING epoch`, `pages` likewise),
  never read-modify-write in Python.
- **Upserts** (`INSERT … ON CONFLICT DO UPDATE`) for cursors and incidents, and `ON
  CONFLICT DO NOTHING` for outbox de-duplication: both dialects speak it.
- **Aware UTC datetimes everywhere** (`schema.UTCDateTime`); the clock is injectable.
- **Outbox without row locking**: only the leader replica drains it (one voice), so
  `due_outbox` is a plain query; add `FOR UPDATE SKIP LOCKED` if that ever changes.

How it is built: `SqlStore` is one repository implementing one port, so it stays one class
with one public surface; its methods are grouped by the tables they own, one mixin class per
module, all deriving from `bot.store.base.StoreBase` (the engines, the clock, the lifecycle):

- `bot.store.actions`: actions (exactly once) and the audit log (`actions`, `audit_log`,
  `audit_head`);
- `bot.store.cards`: status cards (`cards`), with what their outcome and PagerDuty lines
  show;
- `bot.store.incidents`: incidents, one per Rollout revision, and their re-page counters
  (`incidents`); `bot.store.codecs` maps model values to columns and JSON and back;
- `bot.store.queues`: the webhook inbox, its poison bin and the outbox (`webhook_inbox`,
  `outbox`), with `WebhookRecord` and `OutboxItem`;
- `bot.store.dedup`: notices sent and signed requests seen (`notices_sent`,
  `seen_requests`);
- `bot.store.releases`: releases and their cleanup tickets (`releases`, `release_tickets`);
- `bot.store.leases`: leases and watch cursors (`leases`, `cursors`);
- `bot.store.reverts`: Tier 3 reverts run by rollbot (`reverts`).

**Cancel-safe calls.** Every public coroutine method runs to the end of its transaction
even when its caller is cancelled (a shutdown cancels its loops wherever they are): with
SQLite, a connection abandoned mid-transaction keeps the write lock, and every later write
waits out the busy timeout. `close` waits for those calls first.

`RecordNotFound`, `WebhookRecord` and `OutboxItem` are re-exported here, where they used to
live.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.store.actions import ActionsMixin
from bot.store.base import RecordNotFound, StoreBase
from bot.store.cards import CardsMixin
from bot.store.dedup import DedupMixin
from bot.store.incidents import IncidentsMixin
from bot.store.leases import LeasesMixin
from bot.store.queues import OutboxItem, QueuesMixin, WebhookRecord
from bot.store.releases import ReleasesMixin
from bot.store.reverts import RevertsMixin

__all__ = ["OutboxItem", "RecordNotFound", "SqlStore", "WebhookRecord"]

log = logging.getLogger(__name__)

#: How long `close` waits for store calls still finishing for cancelled callers.
CLOSE_WAIT_SECONDS = 10.0


def _cancel_safe(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`fn` run to its end even when its caller is cancelled (the caller still gets its
    CancelledError at once). Cancelled mid-statement, SQLAlchemy invalidates the connection
    without ending its transaction, and with SQLite the abandoned connection keeps the
    database's write lock: every later write, the leader lease's release at shutdown
    included, waits out the busy timeout (30 s). A shutdown cancels its loops wherever they
    are, so every store call finishes its transaction instead."""

    @functools.wraps(fn)
    async def call(self: SqlStore, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.ensure_future(fn(self, *args, **kwargs))
        self._in_flight.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    return call


class SqlStore(
    ActionsMixin,
    CardsMixin,
    IncidentsMixin,
    QueuesMixin,
    DedupMixin,
    ReleasesMixin,
    LeasesMixin,
    RevertsMixin,
    StoreBase,
):
    """rollbot's database. Build it with `bot.store.open_store(url)`; `await close()` it.

    Every public coroutine method runs to its end even when its caller is cancelled
    (`_cancel_safe`); `close` waits for those still running before closing the engine."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight: set[asyncio.Future[Any]] = set()

    def _settled(self, task: asyncio.Future[Any]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its caller was cancelled and will never see it: said here, once.
            log.debug("store call finished after its caller was cancelled: %r", task.exception())

    async def close(self) -> None:
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=CLOSE_WAIT_SECONDS)
        await super().close()


def _wrap(cls: type) -> None:
    """Make the public coroutine methods of `cls` (its own and its mixins') cancel-safe."""
    for name in dir(cls):
        if name.startswith("_") or name == "close":
            continue
        fn = inspect.getattr_static(cls, name)
        if inspect.iscoroutinefunction(fn) and not getattr(fn, "_cancel_safe", False):
            wrapped = _cancel_safe(fn)
            wrapped._cancel_safe = True  # type: ignore[attr-defined]
            setattr(cls, name, wrapped)


_wrap(SqlStore)
