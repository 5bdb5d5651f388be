"""Signed requests already seen (replay protection) and poison bodies in the inbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Frozen: describes the schema as revision 0003 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_requests",
        sa.Column("digest", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_seen_requests_seen_at", "seen_requests", ["seen_at"])
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.add_column(sa.Column("poison", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox") as batch:
        batch.drop_column("poison")
    op.drop_index("ix_seen_requests_seen_at", table_name="seen_requests")
    op.drop_table("seen_requests")
