"""Money policy: auto-approval budgets, reasons, two approvers, confirmations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credit_changes") as batch:
        batch.add_column(
            sa.Column("auto_approved", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("credits", sa.BigInteger))
    op.create_index("ix_credit_changes_created_at", "credit_changes", ["created_at"])
    with op.batch_alter_table("approval_requests") as batch:
        batch.add_column(sa.Column("change_reason", sa.Text))
        batch.add_column(sa.Column("first_approver", sa.String(32)))
        batch.add_column(sa.Column("first_approved_at", sa.DateTime(timezone=True)))
        batch.add_column(
            sa.Column("approvals_needed", sa.Integer, nullable=False, server_default="1")
        )
    op.create_table(
        "confirmations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("actor_id", sa.String(32), nullable=False),
        sa.Column("arguments", sa.Text, nullable=False),
        sa.Column("auto_approved", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending | confirmed | cancelled
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("confirmations")
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_column("approvals_needed")
        batch.drop_column("first_approved_at")
        batch.drop_column("first_approver")
        batch.drop_column("change_reason")
    op.drop_index("ix_credit_changes_created_at", "credit_changes")
    with op.batch_alter_table("credit_changes") as batch:
        batch.drop_column("credits")
        batch.drop_column("auto_approved")
