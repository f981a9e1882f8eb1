"""Who opened the App Home lately (their Home is refreshed after a sweep).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "home_viewers",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_home_viewers_opened_at", "home_viewers", ["opened_at"])


def downgrade() -> None:
    op.drop_index("ix_home_viewers_opened_at", table_name="home_viewers")
    op.drop_table("home_viewers")
