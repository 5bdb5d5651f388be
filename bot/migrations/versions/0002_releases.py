"""Releases, their cleanup tickets, notices sent, leases and APScheduler's job table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Frozen: describes the schema as revision 0002 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("started_by", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("owner_slack", sa.String(64), nullable=True),
        sa.Column("revision", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.String(128), nullable=True),
        _ts("started_at"),
        _ts("clock_started_at"),
        _ts("full_rollout_at", nullable=True),
        sa.Column("winner", sa.String(255), nullable=True),
        _ts("winner_at", nullable=True),
        _ts("stopped_at", nullable=True),
        sa.Column("channel", sa.String(255), nullable=True),
        sa.Column("thread_ts", sa.String(64), nullable=True),
        sa.Column("checklist_ts", sa.String(64), nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_releases_service", "releases", ["service", "started_at"])

    op.create_table(
        "release_tickets",
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
        _ts("attempted_at", nullable=True),
        _ts("filed_at", nullable=True),
        _ts("updated_at"),
    )

    op.create_table(
        "notices_sent",
        sa.Column("id", sa.String(512), primary_key=True),
        sa.Column("release_id", sa.String(255), nullable=False),
        _ts("sent_at"),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        _ts("acquired_at"),
        _ts("expires_at"),
    )

    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_table("leases")
    op.drop_table("notices_sent")
    op.drop_table("release_tickets")
    op.drop_index("ix_releases_service", table_name="releases")
    op.drop_table("releases")
