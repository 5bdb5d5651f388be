"""Durable incidents: the incidents table, and each card's last outcome and PagerDuty line.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

Incidents, the outcome line of each card and the re-page counter (`…#2`) lived in the
leader's memory and were forgotten on a restart (issue 15). The incident engine writes each
incident through to `incidents` (one row per Rollout revision, keyed like its card) and a
new leader loads the live ones; `pages` counts the times its PagerDuty incident was paged
again. `cards` keeps what the card's outcome and PagerDuty lines show.

Frozen: describes the schema as revision 0005 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("card_key", sa.String(512), primary_key=True),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("rollout", sa.String(255), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("opened_at"),
        _ts("changed_at"),
        _ts("first_breach_at", nullable=True),
        sa.Column("firing", sa.JSON, nullable=False),
        sa.Column("seen", sa.JSON, nullable=False),
        sa.Column("summaries", sa.JSON, nullable=False),
        sa.Column("alerts", sa.JSON, nullable=False),
        sa.Column("pages", sa.Integer, nullable=False, server_default=sa.text("0")),
        _ts("updated_at"),
    )
    op.create_index("ix_incidents_state_changed", "incidents", ["state", "changed_at"])
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("outcome", sa.JSON, nullable=True))
        batch.add_column(sa.Column("pager", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("pager")
        batch.drop_column("outcome")
    op.drop_index("ix_incidents_state_changed", table_name="incidents")
    op.drop_table("incidents")
