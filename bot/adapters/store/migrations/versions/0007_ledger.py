"""The audit ledger (every version of every audit row, chained by hash), and the
reminder count and escalation time of approval requests, and the digest messages
people have acted on (so their edits build on each other).

Audit rows written before this revision are not in the chain: `unchained_through`
remembers the last of them, and `audit verify` reports them as such.

Revision ID: 0007
Revises: 0005 (the `policy` branch's 0006 may come between; re-linked at merge)
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    head = op.create_table(
        "ledger_head",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("unchained_through", sa.Integer, nullable=False),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_ledger_entries_event_id", "ledger_entries", ["event_id"])
    last = op.get_bind().execute(sa.text("SELECT MAX(id) FROM audit_events")).scalar()
    op.bulk_insert(
        head, [{"name": "audit", "seq": 0, "hash": GENESIS, "unchained_through": last or 0}]
    )
    op.create_table(
        "digest_messages",
        sa.Column("channel_id", sa.String(32), primary_key=True),
        sa.Column("message_ts", sa.String(32), primary_key=True),
        sa.Column("blocks", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("approval_requests") as batch:
        batch.add_column(sa.Column("reminders", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_column("escalated_at")
        batch.drop_column("reminders")
    op.drop_table("digest_messages")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_head")
