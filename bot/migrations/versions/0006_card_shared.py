"""What lets any replica act on a card while the leader alone edits it: the card's gate,
its breaker, and a mark asking the leader to render it again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Every replica answers Slack (issue 15), so the abort clicked on a standby is executed
there, while the card's message is edited by the leader alone (one writer per message: no
older render can overwrite a newer one). The standby writes the outcome (0005) and these:
`gate`, rollbot's own action on the card's Rollout (in flight, or verified and explaining
what the watch sees next), so the leader's watch does not tell it twice; `circuit`, the
service's breaker as last read; `dirty_at`, set when the card must be rendered again by
the leader, cleared by the leader as it takes it.

`incidents.alert_starts`: the latest occurrence (`startsAt`) of each alert applied to the
incident, so a delivery that arrives after a newer one about the same alert (a standby's
webhook replayed after the leader's, a replay after a restart) is known stale.

Frozen: describes the schema as revision 0006 introduced it (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("gate", sa.JSON, nullable=True))
        batch.add_column(sa.Column("circuit", sa.JSON, nullable=True))
        batch.add_column(sa.Column("dirty_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("alert_starts", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("alert_starts")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("dirty_at")
        batch.drop_column("circuit")
        batch.drop_column("gate")
