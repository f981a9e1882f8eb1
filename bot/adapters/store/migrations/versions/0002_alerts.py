"""Low-credit alerts: state per subuser, balance snapshots, threshold overrides, clock lease.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("announced", sa.String(16), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True)),
        sa.Column("last_remaining", sa.BigInteger),
        sa.Column("last_seen_at", sa.DateTime(timezone=True)),
        sa.Column("per_hour", sa.Float),
    )
    op.create_table(
        "balance_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remaining", sa.BigInteger),
        sa.Column("unlimited", sa.Boolean, nullable=False),
    )
    op.create_index("ix_balance_snapshots_target_at", "balance_snapshots", ["target", "at"])
    op.create_table(
        "alert_thresholds",
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("below", sa.BigInteger, nullable=False),
        sa.Column("set_by", sa.String(32), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_table("alert_thresholds")
    op.drop_index("ix_balance_snapshots_target_at", "balance_snapshots")
    op.drop_table("balance_snapshots")
    op.drop_table("alert_states")
