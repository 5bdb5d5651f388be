"""The release card's digest: what the card in the service's channel shows, so that it is
updated in place only when its rendered content changes, across restarts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Frozen: describes the schema as revision 0004 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("card_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("card_digest")
