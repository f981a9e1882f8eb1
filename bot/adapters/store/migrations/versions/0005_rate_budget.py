"""The fleet's shared SendGrid rate budget: its pause, and the grants in its window.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("paused_until", sa.Float, nullable=False),
    )
    op.create_table(
        "rate_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("budget", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_rate_grants_budget_at", "rate_grants", ["budget", "at"])


def downgrade() -> None:
    op.drop_table("rate_grants")
    op.drop_table("rate_budgets")
