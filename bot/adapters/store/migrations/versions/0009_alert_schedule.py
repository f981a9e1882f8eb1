"""Continuous, risk-ordered balance reads: per subuser the spread of its burn rate,
the level last assessed and when it is due to be read again (issue 15).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_states") as batch:
        batch.add_column(sa.Column("rate_spread", sa.Float, nullable=True))
        batch.add_column(sa.Column("level", sa.String(16), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_alert_states_due_at", "alert_states", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_states_due_at", table_name="alert_states")
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_column("due_at")
        batch.drop_column("level")
        batch.drop_column("rate_spread")
