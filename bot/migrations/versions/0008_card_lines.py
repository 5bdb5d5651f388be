"""A card's thread lines not yet posted: kept until Slack has them, taken over when their
process is gone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

A thread line waiting for Slack (down, rate-limiting) lived only in the memory of the
process posting it: a restart lost it. Each line is now a row from the moment it is queued
until Slack has it; the process posting it holds a lease on it, and the leader posts the
lines whose lease ran out (issue 15: nothing is forgotten on restart).

Frozen: describes the schema as revision 0008 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_lines",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("card_key", sa.String(512), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_card_lines_lease_until", "card_lines", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_card_lines_lease_until", table_name="card_lines")
    op.drop_table("card_lines")
