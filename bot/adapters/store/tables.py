"""The database schema (SQLAlchemy Core). Alembic migrations create and change it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("credits", BigInteger),
    Column("period", String(16)),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("initial_credits", BigInteger),
    Column("requester_id", String(32), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(32)),
    Column("decided_at", DateTime(timezone=True)),
    Column("reason", Text),
    Column("executor", String(120)),
    Column("channel_id", String(32)),
    Column("message_ts", String(32)),
    Column("before_balance", Text),
    Column("after_balance", Text),
    Column("detail", Text),
    # reminders (bot/transports/clock.py): how many were posted, and when the
    # escalation group was called in
    Column("reminders", Integer, nullable=False, server_default="0"),
    Column("escalated_at", DateTime(timezone=True)),
    Column("change_reason", Text),  # why it was asked (the rest of the command line)
    Column("first_approver", String(32)),  # of two, when two are needed
    Column("first_approved_at", DateTime(timezone=True)),
    Column("approvals_needed", Integer, nullable=False, server_default="1"),
    Index("ix_approval_requests_status", "status"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_id", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("target", String(64)),
    Column("request_id", Integer),
    Column("arguments", Text),
    Column("outcome", Text),
    Column("before_balance", Text),
    Column("after_balance", Text),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_target", "target"),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("announced", String(16), nullable=False),
    Column("snoozed_until", DateTime(timezone=True)),
    Column("last_remaining", BigInteger),
    Column("last_seen_at", DateTime(timezone=True)),
    Column("per_hour", Float),
    Column("rate_spread", Float),
    Column("level", String(16)),
    Column("due_at", DateTime(timezone=True), index=True),
)

balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("remaining", BigInteger),
    Column("unlimited", Boolean, nullable=False),
    Index("ix_balance_snapshots_target_at", "target", "at"),
)

# Who opened the bot's App Home lately: their Home is refreshed after a sweep.
home_viewers = Table(
    "home_viewers",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Index("ix_home_viewers_opened_at", "opened_at"),
)

alert_thresholds = Table(
    "alert_thresholds",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("below", BigInteger, nullable=False),
    Column("set_by", String(32), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(120), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

seen_requests = Table(
    "seen_requests",
    metadata,
    Column("signature", String(80), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Index("ix_seen_requests_seen_at", "seen_at"),
)

credit_changes = Table(
    "credit_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(16), nullable=False),  # direct | request
    Column("request_id", Integer),
    Column("audit_event_id", Integer),
    Column("actor_id", String(32), nullable=False),
    Column("target", String(64), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("state", String(16), nullable=False),  # intent | sent | applied | failed | unknown
    Column("owner", String(120), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("before_balance", Text),
    Column("after_balance", Text),
    Column("detail", Text),
    # Auto-approved direct adds count against CREDITS_AUTO_APPROVE_BUDGET.
    Column("auto_approved", Boolean, nullable=False, server_default="0"),
    Column("credits", BigInteger),
    Index("ix_credit_changes_state", "state"),
    Index("ix_credit_changes_created_at", "created_at"),
)

# A direct change waiting for its author's Confirm click (above CREDITS_CONFIRM_ABOVE,
# or ending a recurring plan); `pending → confirmed` is one conditional UPDATE.
confirmations = Table(
    "confirmations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor_id", String(32), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("auto_approved", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
)

# The fleet's SendGrid rate budget (bot/adapters/store/ratelimit.py): one row per
# budget holds the pause after a 429 and is locked for every grant; each grant is a
# row, pruned once it has left the window. Times are epoch seconds.
rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("paused_until", Float, nullable=False),
)

rate_grants = Table(
    "rate_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("budget", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_rate_grants_budget_at", "budget", "at"),
)

# The audit ledger (bot/adapters/store/ledger.py): every version of every audit row,
# chained by hash. `ledger_head` is one row per chain, updated (so locked) first by
# whoever appends, which serialises appends across instances.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("unchained_through", Integer, nullable=False),  # audit rows older than the ledger
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("event_id", Integer, nullable=False),
    Column("entry", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_ledger_entries_event_id", "event_id"),
)

# The digest messages whose lines people have acted on (Add credits, Snooze): the
# message's blocks as last edited, so concurrent edits build on each other (the row
# is locked while one is made) instead of each click's stale copy.
digest_messages = Table(
    "digest_messages",
    metadata,
    Column("channel_id", String(32), primary_key=True),
    Column("message_ts", String(32), primary_key=True),
    Column("blocks", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
