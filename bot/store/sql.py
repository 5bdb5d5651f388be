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
- `bot.store.leases`: leases and watch cursors (`leases`, `cursors`).

`RecordNotFound`, `WebhookRecord` and `OutboxItem` are re-exported here, where they used to
live.
"""

from __future__ import annotations

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
    """rollbot's database. Build it with `bot.store.open_store(url)`; `await close()` it."""
