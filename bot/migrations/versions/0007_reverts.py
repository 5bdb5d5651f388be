"""Tier 3 reverts run by rollbot: one row per card, its state moved by compare-and-set.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A Tier 3 revert (issue 18) is a state machine across crashes and replicas: prepared,
confirmed, opened, approved, merged, verified. `state` and `version` are columns, so a step
moves the row only from the state it read (two replicas, a retried step: one wins); the
rest of the case (who asked, the branch, the pull or merge request, the merge commit) is
`data`, JSON.

Frozen: describes the schema as revision 0007 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reverts",
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("card_key", sa.String(512), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reverts_state", "reverts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_reverts_state", table_name="reverts")
    op.drop_table("reverts")
