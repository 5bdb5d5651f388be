"""The tables, as SQLAlchemy Core metadata (the queries' view of the schema).

The migrations in `bot/migrations/versions/` are the source of truth for the DDL and are
written out by hand, frozen at the revision that introduced them; this module must describe
the same shape at head (a test compares the two with Alembic's autogenerate diff).

Every timestamp column is `UTCDateTime`: aware UTC in, aware UTC out, on both backends.
PostgreSQL stores `timestamptz`; SQLite has no timezone type, so the value is stored as
naive UTC text (`YYYY-MM-DD HH:MM:SS.ffffff`, which also sorts correctly) and the zone is
put back on the way out.

JSON columns are plain `JSON` (PostgreSQL `json`, not `jsonb`): `json` keeps the text it
was given, so numbers read back exactly as Python wrote them and the audit hashes, which
are computed over the Python values, stay reproducible (`jsonb` would turn `1e+20` into
`100000000000000000000`, an int, and break the chain on a value nobody tampered with).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

ZERO_HASH = "0" * 64


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive input is taken as UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = to_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # a value written by hand or by another tool
            value = datetime.fromisoformat(value)
        return to_utc(value)


def to_utc(value: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


metadata = sa.MetaData()

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor_id", sa.String(255), nullable=False),
    sa.Column("actor_name", sa.String(255), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("result", sa.JSON, nullable=False),
    sa.UniqueConstraint("key", name="uq_actions_key"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(255), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("result", sa.String(64), nullable=False),
    sa.Column("before", sa.JSON, nullable=False),
    sa.Column("after", sa.JSON, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Two entries can never hang off the same predecessor: a fork is impossible even if the
    # head lock were bypassed.
    sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)

cards = sa.Table(
    "cards",
    metadata,
    sa.Column("card_key", sa.String(512), primary_key=True),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("ts", sa.String(64), nullable=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # What the card's outcome line and PagerDuty line show, so a new leader renders the
    # same card (0005): the last executed action's `Outcome` as a small JSON object
    # (`bot.store.codecs`), and the PagerDuty incident's notice line. NULL: none yet.
    sa.Column("outcome", sa.JSON, nullable=True),
    sa.Column("pager", sa.Text, nullable=True),
    # What lets a standby act on the card while the leader alone edits it (0006): rollbot's
    # own action on the Rollout (`bot.cards.thread.ActionGate`, as JSON), the service's
    # breaker as last read (`bot.store.codecs`), and when the leader must render it again.
    sa.Column("gate", sa.JSON, nullable=True),
    sa.Column("circuit", sa.JSON, nullable=True),
    sa.Column("dirty_at", UTCDateTime, nullable=True),
)

# A card's thread lines not yet in Slack (0008), so that a line is not lost with the
# process that was posting it: written when the line is queued, deleted once Slack has it.
# `owner` is the process posting it, for as long as its lease (`lease_until`) is renewed;
# a line whose lease ran out (its process died, or stopped) is taken over by the leader.
card_lines = sa.Table(
    "card_lines",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),  # the line's post key (metadata)
    sa.Column("card_key", sa.String(512), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=False),
    sa.Index("ix_card_lines_lease_until", "lease_until"),
)

# One incident per Rollout revision, keyed like its card; the live ones are loaded by a new
# leader (0005). `firing` and `seen` are sorted lists of signal keys, `summaries` a list of
# [key, summary] pairs in the incident's order, `alerts` fingerprint → summary of the alerts
# firing now; `pages` counts re-pages (`…#2`) and only `bump_incident_pages` writes it.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("card_key", sa.String(512), primary_key=True),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("rollout", sa.String(255), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("first_breach_at", UTCDateTime, nullable=True),
    sa.Column("firing", sa.JSON, nullable=False),
    sa.Column("seen", sa.JSON, nullable=False),
    sa.Column("summaries", sa.JSON, nullable=False),
    sa.Column("alerts", sa.JSON, nullable=False),
    sa.Column("pages", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # [key, startsAt] of the latest occurrence of each alert applied (0006): a delivery
    # older than it is stale. NULL: none (a row written before 0006).
    sa.Column("alert_starts", sa.JSON, nullable=True),
    # load_incidents: everything not resolved, and what resolved since a moment.
    sa.Index("ix_incidents_state_changed", "state", "changed_at"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("resource_version", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

webhook_inbox = sa.Table(
    "webhook_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # A body that was authentic but cannot be processed: kept, never replayed (0003).
    sa.Column("poison", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_webhook_inbox_unprocessed", "processed_at", "id"),
)

# Signed requests already seen, so a replay inside the sender's window runs nothing (0003).
seen_requests = sa.Table(
    "seen_requests",
    metadata,
    sa.Column("digest", sa.String(128), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Index("ix_seen_requests_seen_at", "seen_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("dedup_key", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
    sa.Index("ix_outbox_due", "done_at", "next_attempt_at"),
)

# ── Tier 3 reverts run by rollbot (issue 18, 0007) ──────────────────────────────────────
# One row per card: the revert's state and, as JSON, the rest of its `RevertCase` (who,
# what was prepared, the pull or merge request, the merge). Each step moves `state` with a
# compare-and-set on (`state`, `version`), so two replicas or a retried step never both do
# it.

reverts = sa.Table(
    "reverts",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("card_key", sa.String(512), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_reverts_state", "state"),
)

# ── releases and their cleanup tickets (issue 5) ───────────────────────────────────────

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # "payment-router@1.13.0": once only
    sa.Column("service", sa.String(255), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("started_by", sa.String(255), nullable=False),
    sa.Column("owner", sa.String(255), nullable=True),
    sa.Column("owner_slack", sa.String(64), nullable=True),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("previous_version", sa.String(128), nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("clock_started_at", UTCDateTime, nullable=False),
    sa.Column("full_rollout_at", UTCDateTime, nullable=True),
    sa.Column("winner", sa.String(255), nullable=True),
    sa.Column("winner_at", UTCDateTime, nullable=True),
    sa.Column("stopped_at", UTCDateTime, nullable=True),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("thread_ts", sa.String(64), nullable=True),
    sa.Column("checklist_ts", sa.String(64), nullable=True),
    # What the release card (the thread's root, `thread_ts`) shows: a digest of its last
    # rendering sent to Slack; the card is updated when the rendering differs (0004).
    sa.Column("card_digest", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_releases_service", "service", "started_at"),
)

release_tickets = sa.Table(
    "release_tickets",
    metadata,
    sa.Column("release_id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("key", sa.String(64), nullable=True),
    sa.Column("url", sa.String(1024), nullable=True),
    sa.Column("due", sa.Date, nullable=True),
    sa.Column("provisional", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(128), nullable=True),
    sa.Column("status_category", sa.String(32), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempted_at", UTCDateTime, nullable=True),
    sa.Column("filed_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Reminders, escalations and refusals sent: a notice id is sent at most once.
notices_sent = sa.Table(
    "notices_sent",
    metadata,
    sa.Column("id", sa.String(512), primary_key=True),
    sa.Column("release_id", sa.String(255), nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)

# Who runs the scheduler (and, later, the watches): one holder per name at a time.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# APScheduler 3.11's SQLAlchemyJobStore table, as it defines it (it creates it when missing;
# the migration owns it so `rollbot db upgrade` makes the whole schema).
apscheduler_jobs = sa.Table(
    "apscheduler_jobs",
    metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)
