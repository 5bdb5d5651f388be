"""`SqlStore`: the `Store` port on SQLAlchemy 2 (asyncio), for SQLite and PostgreSQL.

Why each choice:

- **Exactly once = a UNIQUE constraint.** `claim_action` and `claim_card` simply INSERT; the
  database's unique index picks the winner of a double click, a Slack retry, fifty
  coroutines or two replicas on two engines, and every loser gets an `IntegrityError`
  (both backends), then reads and returns the winner's row. No read-then-write window, no
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
- **Atomic counters in SQL** (`epoch = epoch + 1 … RETURNING epoch`), never read-modify-write
  in Python.
- **Upserts** (`INSERT … ON CONFLICT DO UPDATE`) for cursors and `ON CONFLICT DO NOTHING`
  for outbox de-duplication: both dialects speak it.
- **Aware UTC datetimes everywhere** (`schema.UTCDateTime`); the clock is injectable.
- **Outbox without row locking**: only the leader replica drains it (one voice), so
  `due_outbox` is a plain query; add `FOR UPDATE SKIP LOCKED` if that ever changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.core.errors import PermanentError
from bot.core.model import AuditEntry, Release, ReleasePhase
from bot.core.ports import (
    ActionRecord,
    AuditRecord,
    AuditVerification,
    CardRecord,
    Claim,
    TicketRecord,
)
from bot.store import audit
from bot.store.engine import BEGIN_OPTION
from bot.store.schema import (
    actions,
    audit_head,
    audit_log,
    cards,
    cursors,
    leases,
    notices_sent,
    outbox,
    release_tickets,
    releases,
    seen_requests,
    webhook_inbox,
)

_PAGE = 1000


class RecordNotFound(PermanentError, LookupError):
    """An update named a row that does not exist (an action, card, webhook or outbox item)."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"no {kind} {key!r} in the store")
        self.kind, self.key = kind, key


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """One received webhook, stored before its 2xx was sent."""

    id: int
    source: str
    received_at: datetime
    headers: dict[str, Any]
    body: str
    processed_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outgoing call waiting to be made (or retried with backoff)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    done_at: datetime | None
    dedup_key: str | None


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    """rollbot's database. Build it with `bot.store.open_store(url)`; `await close()` it."""

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

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""
        async with self._reader.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that knows ON CONFLICT, in this engine's dialect."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # ── actions: exactly once ──────────────────────────────────────────────────────────

    async def claim_action(
        self,
        key: str,
        *,
        service: str,
        target: str,
        action: str,
        actor_id: str,
        actor_name: str,
        source: str,
    ) -> Claim:
        record = ActionRecord(
            key=key,
            service=service,
            target=target,
            action=action,
            actor_id=actor_id,
            actor_name=actor_name,
            source=source,
            status="running",
            requested_at=self._clock(),
            finished_at=None,
            result={},
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(actions.insert().values(**_action_values(record)))
        except IntegrityError:
            winner = await self._action(key)
            if winner is None:  # the winner's row vanished: never expected, say so loudly
                raise
            return Claim(won=False, record=winner)
        return Claim(won=True, record=record)

    async def get_action(self, key: str) -> ActionRecord | None:
        return await self._action(key)

    async def _action(self, key: str) -> ActionRecord | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(actions).where(actions.c.key == key))).first()
        return None if row is None else _action_record(row)

    async def finish_action(self, key: str, *, status: str, result: dict[str, Any]) -> ActionRecord:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    actions.update()
                    .where(actions.c.key == key)
                    .values(
                        status=status, result=audit.plain_json(result), finished_at=self._clock()
                    )
                    .returning(*actions.c)
                )
            ).first()
        if row is None:
            raise RecordNotFound("action", key)
        return _action_record(row)

    # ── audit: append-only hash chain ──────────────────────────────────────────────────

    async def append_audit(self, entry: AuditEntry) -> AuditRecord:
        entry = audit.normalise(entry)
        async with self._engine.begin() as conn:
            head = (
                await conn.execute(
                    sa.select(audit_head.c.seq, audit_head.c.hash)
                    .where(audit_head.c.id == 1)
                    .with_for_update()
                )
            ).one()
            seq = head.seq + 1
            digest = audit.entry_hash(head.hash, seq, entry)
            await conn.execute(
                audit_log.insert().values(
                    seq=seq,
                    at=entry.at,
                    actor=entry.actor,
                    action=entry.action,
                    target=entry.target,
                    result=entry.result,
                    before=entry.before,
                    after=entry.after,
                    duration_ms=entry.duration_ms,
                    detail=entry.detail,
                    prev_hash=head.hash,
                    hash=digest,
                )
            )
            await conn.execute(
                audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest)
            )
        return AuditRecord(seq=seq, entry=entry, prev_hash=head.hash, hash=digest)

    async def audit_entries(
        self, *, since_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Entries with seq > `since_seq`, oldest first (at most `limit`)."""
        query = sa.select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
        if limit is not None:
            query = query.limit(limit)
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_audit_record(r) for r in rows]

    async def audit_head(self) -> tuple[int, str]:
        """(seq, hash) of the last append: the value to anchor outside the database."""
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
        return int(row.seq), str(row.hash)

    async def verify_audit(self) -> AuditVerification:
        """Recompute the whole chain from one consistent snapshot, page by page."""
        conn: AsyncConnection
        async with self._reader.connect() as conn:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).one()
                records: list[AuditRecord] = []
                last = 0
                while True:
                    page = (
                        await conn.execute(
                            sa.select(audit_log)
                            .where(audit_log.c.seq > last)
                            .order_by(audit_log.c.seq)
                            .limit(_PAGE)
                        )
                    ).all()
                    records.extend(_audit_record(r) for r in page)
                    if len(page) < _PAGE:
                        break
                    last = page[-1].seq
        return audit.verify_chain(records, head=(int(head.seq), str(head.hash)))

    # ── cards: one per Rollout revision ────────────────────────────────────────────────

    async def claim_card(
        self, card_key: str, *, service: str, channel: str
    ) -> tuple[bool, CardRecord]:
        now = self._clock()
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    cards.insert().values(
                        card_key=card_key,
                        service=service,
                        channel=channel,
                        ts=None,
                        digest="",
                        epoch=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = await self.get_card(card_key)
            if existing is None:
                raise
            return False, existing
        return True, CardRecord(
            card_key=card_key, service=service, channel=channel, ts=None, digest="", epoch=0
        )

    async def get_card(self, card_key: str) -> CardRecord | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(cards).where(cards.c.card_key == card_key))).first()
        return None if row is None else _card_record(row)

    async def set_card_message(
        self, card_key: str, *, ts: str, digest: str, channel: str | None = None
    ) -> CardRecord:
        """Record the posted message; `channel` is the id Slack answered with (chat.update
        needs the id, while the catalog may name the channel)."""
        values: dict[str, Any] = {"ts": ts, "digest": digest}
        if channel:
            values["channel"] = channel
        row = await self._update_card(card_key, **values)
        return _card_record(row)

    async def set_card_digest(self, card_key: str, digest: str) -> None:
        await self._update_card(card_key, digest=digest)

    async def bump_card_epoch(self, card_key: str) -> int:
        row = await self._update_card(card_key, epoch=cards.c.epoch + 1)
        return int(row.epoch)

    async def _update_card(self, card_key: str, **values: Any) -> sa.Row[Any]:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    cards.update()
                    .where(cards.c.card_key == card_key)
                    .values(updated_at=self._clock(), **values)
                    .returning(*cards.c)
                )
            ).first()
        if row is None:
            raise RecordNotFound("card", card_key)
        return row

    # ── watch cursors ──────────────────────────────────────────────────────────────────

    async def get_cursor(self, kind: str, namespace: str) -> str | None:
        async with self._reader.begin() as conn:
            value = (
                await conn.execute(
                    sa.select(cursors.c.resource_version).where(
                        cursors.c.kind == kind, cursors.c.namespace == namespace
                    )
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def set_cursor(self, kind: str, namespace: str, resource_version: str) -> None:
        now = self._clock()
        stmt = self._insert(cursors).values(
            kind=kind, namespace=namespace, resource_version=resource_version, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[cursors.c.kind, cursors.c.namespace],
            set_={"resource_version": resource_version, "updated_at": now},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    # ── webhook inbox: stored before the 2xx ───────────────────────────────────────────

    async def store_webhook(
        self, source: str, headers: Mapping[str, str], body: str | bytes
    ) -> int:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        async with self._engine.begin() as conn:
            new_id = (
                await conn.execute(
                    webhook_inbox.insert()
                    .values(
                        source=source, received_at=self._clock(), headers=dict(headers), body=text
                    )
                    .returning(webhook_inbox.c.id)
                )
            ).scalar_one()
        return int(new_id)

    async def mark_webhook_processed(self, id: int, error: str | None = None) -> None:
        """Done with it (with `error` when handling failed, kept for the operator)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                webhook_inbox.update()
                .where(webhook_inbox.c.id == id)
                .values(processed_at=self._clock(), error=error)
            )
        if result.rowcount == 0:
            raise RecordNotFound("webhook", id)

    async def pending_webhooks(self, limit: int = 100) -> list[WebhookRecord]:
        """Stored but never processed (e.g. the replica died after its 2xx), oldest first."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(webhook_inbox)
                    .where(webhook_inbox.c.processed_at.is_(None))
                    .order_by(webhook_inbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [
            WebhookRecord(r.id, r.source, r.received_at, r.headers, r.body, r.processed_at, r.error)
            for r in rows
        ]

    async def store_poison(
        self, source: str, headers: Mapping[str, str], body: bytes, why: str
    ) -> int:
        """Keep an authentic body that cannot be processed: stored already processed (so
        it is never replayed), marked poison, with why. Bytes that are not UTF-8 and NUL
        characters (which PostgreSQL text refuses) are kept as backslash escapes."""
        text = body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
        now = self._clock()
        async with self._engine.begin() as conn:
            new_id = (
                await conn.execute(
                    webhook_inbox.insert()
                    .values(
                        source=source,
                        received_at=now,
                        headers=dict(headers),
                        body=text,
                        processed_at=now,
                        error=f"poison: {why}",
                        poison=True,
                    )
                    .returning(webhook_inbox.c.id)
                )
            ).scalar_one()
        return int(new_id)

    async def poison_count(self, source: str | None = None) -> int:
        """How many poison bodies are kept (of `source`, or of all)."""
        query = sa.select(sa.func.count()).select_from(webhook_inbox).where(webhook_inbox.c.poison)
        if source is not None:
            query = query.where(webhook_inbox.c.source == source)
        async with self._reader.begin() as conn:
            return int((await conn.execute(query)).scalar_one())

    # ── signed requests seen: a byte-for-byte replay runs nothing ──────────────────────

    async def first_seen(self, digest: str, *, source: str, forget_after: timedelta) -> bool:
        """True the first time `digest` (a signed request's signature) is seen; False for a
        replay. Digests older than `forget_after` (longer than the sender's replay window,
        after which the signature check refuses the request anyway) are deleted here, at most
        every tenth of `forget_after`, so the table stays small."""
        now = self._clock()
        stmt = (
            self._insert(seen_requests)
            .values(digest=digest, source=source, seen_at=now)
            .on_conflict_do_nothing(index_elements=[seen_requests.c.digest])
            .returning(seen_requests.c.digest)
        )
        last = self._last_seen_prune.get(source)
        prune = last is None or now - last >= forget_after / 10
        async with self._engine.begin() as conn:
            if prune:  # now and then, not per request; each source keeps its own window
                self._last_seen_prune[source] = now
                await conn.execute(
                    seen_requests.delete().where(
                        seen_requests.c.source == source,
                        seen_requests.c.seen_at < now - forget_after,
                    )
                )
            else:
                # Past its window a digest is new again, pruned or not.
                await conn.execute(
                    seen_requests.delete().where(
                        seen_requests.c.digest == digest,
                        seen_requests.c.seen_at < now - forget_after,
                    )
                )
            return (await conn.execute(stmt)).scalar_one_or_none() is not None

    async def forget_seen(self, digest: str) -> None:
        """Forget `digest` (its request could not be kept, so its sender's retry is new)."""
        async with self._engine.begin() as conn:
            await conn.execute(seen_requests.delete().where(seen_requests.c.digest == digest))

    async def get_webhook(self, id: int) -> WebhookRecord | None:
        async with self._reader.begin() as conn:
            r = (
                await conn.execute(sa.select(webhook_inbox).where(webhook_inbox.c.id == id))
            ).first()
        if r is None:
            return None
        return WebhookRecord(
            r.id, r.source, r.received_at, r.headers, r.body, r.processed_at, r.error
        )

    # ── outbox: outgoing calls retried with backoff ────────────────────────────────────

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None,
        *,
        not_before: datetime | None = None,
    ) -> bool:
        """Queue a call; False when `dedup_key` was queued before (nothing is added)."""
        now = self._clock()
        stmt = (
            self._insert(outbox)
            .values(
                kind=kind,
                payload=audit.plain_json(payload),
                attempts=0,
                next_attempt_at=not_before or now,
                dedup_key=dedup_key,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[outbox.c.dedup_key])
            .returning(outbox.c.id)  # a row back means inserted (rowcount is not portable)
        )
        async with self._engine.begin() as conn:
            new_id = (await conn.execute(stmt)).scalar_one_or_none()
        return new_id is not None

    async def due_outbox(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Items not done whose next attempt is at or before `now`, soonest first."""
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.done_at.is_(None), outbox.c.next_attempt_at <= now)
                    .order_by(outbox.c.next_attempt_at, outbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [_outbox_item(r) for r in rows]

    async def outbox_done(self, id: int) -> None:
        await self._update_outbox(id, done_at=self._clock())

    async def outbox_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        await self._update_outbox(
            id, attempts=outbox.c.attempts + 1, last_error=error, next_attempt_at=next_attempt_at
        )

    async def get_outbox(self, id: int) -> OutboxItem | None:
        async with self._reader.begin() as conn:
            r = (await conn.execute(sa.select(outbox).where(outbox.c.id == id))).first()
        return None if r is None else _outbox_item(r)

    async def _update_outbox(self, id: int, **values: Any) -> None:
        async with self._engine.begin() as conn:
            result = await conn.execute(outbox.update().where(outbox.c.id == id).values(**values))
        if result.rowcount == 0:
            raise RecordNotFound("outbox item", id)

    # ── releases and cleanup tickets ───────────────────────────────────────────────────

    async def create_release(self, release: Release) -> tuple[bool, Release]:
        """Record a release once: (True, it) when new, else (False, the one recorded)."""
        stmt = (
            self._insert(releases)
            .values(**_release_values(release), updated_at=self._clock())
            .on_conflict_do_nothing(index_elements=[releases.c.id])
            .returning(releases.c.id)
        )
        async with self._engine.begin() as conn:
            inserted = (await conn.execute(stmt)).scalar_one_or_none()
        if inserted is not None:
            return True, release
        existing = await self.get_release(release.id)
        if existing is None:  # pragma: no cover - deleted in between; nothing deletes releases
            raise RecordNotFound("release", release.id)
        return False, existing

    async def get_release(self, id: str) -> Release | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(releases).where(releases.c.id == id))).first()
        return None if row is None else _release(row)

    async def save_release(self, release: Release) -> None:
        """Write every field of an existing release."""
        values = _release_values(release)
        values.pop("id")
        async with self._engine.begin() as conn:
            result = await conn.execute(
                releases.update()
                .where(releases.c.id == release.id)
                .values(**values, updated_at=self._clock())
            )
        if result.rowcount == 0:
            raise RecordNotFound("release", release.id)

    async def list_releases(
        self, *, service: str | None = None, active: bool = False
    ) -> list[Release]:
        """Releases, newest first; `active`: clocks running or tickets not all filed."""
        query = sa.select(releases).order_by(releases.c.started_at.desc(), releases.c.id)
        if service is not None:
            query = query.where(releases.c.service == service)
        if active:
            query = query.where(
                releases.c.phase.in_([p.value for p in ReleasePhase if p.clock_running])
            )
        async with self._reader.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_release(r) for r in rows]

    async def ensure_ticket(self, release_id: str, kind: str, *, label: str) -> TicketRecord:
        """The ticket's record, created `pending` if it has none yet."""
        now = self._clock()
        stmt = (
            self._insert(release_tickets)
            .values(
                release_id=release_id,
                kind=kind,
                label=label,
                state="pending",
                provisional=True,
                updated_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[release_tickets.c.release_id, release_tickets.c.kind]
            )
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
        found = await self.get_ticket(release_id, kind)
        assert found is not None
        return found

    async def get_ticket(self, release_id: str, kind: str) -> TicketRecord | None:
        async with self._reader.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(release_tickets).where(
                        release_tickets.c.release_id == release_id,
                        release_tickets.c.kind == kind,
                    )
                )
            ).first()
        return None if row is None else _ticket(row)

    async def tickets(self, release_id: str) -> list[TicketRecord]:
        async with self._reader.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(release_tickets)
                    .where(release_tickets.c.release_id == release_id)
                    .order_by(release_tickets.c.kind)
                )
            ).all()
        return [_ticket(r) for r in rows]

    async def update_ticket(self, release_id: str, kind: str, **values: Any) -> TicketRecord:
        """Set some columns of a ticket's record (state, key, url, due, provisional, status,
        status_category, error, attempted_at, filed_at)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                release_tickets.update()
                .where(release_tickets.c.release_id == release_id, release_tickets.c.kind == kind)
                .values(**values, updated_at=self._clock())
            )
        if result.rowcount == 0:
            raise RecordNotFound("release ticket", f"{release_id}/{kind}")
        found = await self.get_ticket(release_id, kind)
        assert found is not None
        return found

    async def mark_notice_sent(self, id: str, *, release_id: str) -> bool:
        """True the first time `id` is marked; False when it was sent before."""
        stmt = (
            self._insert(notices_sent)
            .values(id=id, release_id=release_id, sent_at=self._clock())
            .on_conflict_do_nothing(index_elements=[notices_sent.c.id])
            .returning(notices_sent.c.id)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).scalar_one_or_none() is not None

    async def unmark_notice(self, id: str) -> None:
        """Forget a notice whose sending failed, so that it is tried again."""
        async with self._engine.begin() as conn:
            await conn.execute(notices_sent.delete().where(notices_sent.c.id == id))

    async def notice_sent(self, id: str) -> bool:
        return await self.notice_sent_at(id) is not None

    async def notice_sent_at(self, id: str) -> datetime | None:
        """When `id` was marked sent (UTC), or None when it was not."""
        async with self._reader.begin() as conn:
            row = (
                await conn.execute(sa.select(notices_sent.c.sent_at).where(notices_sent.c.id == id))
            ).first()
        if row is None:
            return None
        at: datetime = row[0]
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    # ── leases: one holder per name ────────────────────────────────────────────────────

    async def acquire_lease(self, name: str, holder: str, *, ttl: float) -> bool:
        """Take or renew the lease `name` for `ttl` seconds; False while someone else
        holds an unexpired one. One statement, so two contenders cannot both win."""
        now = self._clock()
        expires = now + timedelta(seconds=ttl)
        stmt = (
            self._insert(leases)
            .values(name=name, holder=holder, acquired_at=now, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[leases.c.name],
                set_={"holder": holder, "expires_at": expires, "acquired_at": now},
                where=sa.or_(leases.c.holder == holder, leases.c.expires_at < now),
            )
            .returning(leases.c.holder)
        )
        async with self._engine.begin() as conn:
            won = (await conn.execute(stmt)).scalar_one_or_none()
        return won == holder

    async def release_lease(self, name: str, holder: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                leases.delete().where(leases.c.name == name, leases.c.holder == holder)
            )

    async def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        async with self._reader.begin() as conn:
            row = (await conn.execute(sa.select(leases).where(leases.c.name == name))).first()
        return None if row is None else (row.holder, row.expires_at)


# ── rows → records ─────────────────────────────────────────────────────────────────────


def _action_values(r: ActionRecord) -> dict[str, Any]:
    return {
        "key": r.key,
        "service": r.service,
        "target": r.target,
        "action": r.action,
        "actor_id": r.actor_id,
        "actor_name": r.actor_name,
        "source": r.source,
        "status": r.status,
        "requested_at": r.requested_at,
        "finished_at": r.finished_at,
        "result": r.result,
    }


def _action_record(row: sa.Row[Any]) -> ActionRecord:
    return ActionRecord(
        key=row.key,
        service=row.service,
        target=row.target,
        action=row.action,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        source=row.source,
        status=row.status,
        requested_at=row.requested_at,
        finished_at=row.finished_at,
        result=row.result,
    )


def _audit_record(row: sa.Row[Any]) -> AuditRecord:
    entry = AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        result=row.result,
        before=row.before,
        after=row.after,
        duration_ms=row.duration_ms,
        detail=row.detail,
    )
    return AuditRecord(seq=int(row.seq), entry=entry, prev_hash=row.prev_hash, hash=row.hash)


def _card_record(row: sa.Row[Any]) -> CardRecord:
    return CardRecord(
        card_key=row.card_key,
        service=row.service,
        channel=row.channel,
        ts=row.ts,
        digest=row.digest,
        epoch=int(row.epoch),
    )


def _outbox_item(r: sa.Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=r.id,
        kind=r.kind,
        payload=r.payload,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        last_error=r.last_error,
        done_at=r.done_at,
        dedup_key=r.dedup_key,
    )


_RELEASE_FIELDS = (
    "id",
    "service",
    "version",
    "phase",
    "source",
    "started_by",
    "owner",
    "owner_slack",
    "revision",
    "previous_version",
    "started_at",
    "clock_started_at",
    "full_rollout_at",
    "winner",
    "winner_at",
    "stopped_at",
    "channel",
    "thread_ts",
    "checklist_ts",
)


def _release_values(r: Release) -> dict[str, Any]:
    values = {name: getattr(r, name) for name in _RELEASE_FIELDS}
    values["phase"] = r.phase.value
    return values


def _release(row: sa.Row[Any]) -> Release:
    values = {name: getattr(row, name) for name in _RELEASE_FIELDS}
    values["phase"] = ReleasePhase(row.phase)
    return Release(**values)


def _ticket(r: sa.Row[Any]) -> TicketRecord:
    return TicketRecord(
        release_id=r.release_id,
        kind=r.kind,
        label=r.label,
        state=r.state,
        key=r.key,
        url=r.url,
        due=r.due,
        provisional=bool(r.provisional),
        status=r.status,
        status_category=r.status_category,
        error=r.error,
        attempted_at=r.attempted_at,
        filed_at=r.filed_at,
    )
