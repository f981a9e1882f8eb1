"""`SqlStore`: approval requests and the audit trail in SQLite or PostgreSQL.

Every state change of a request is one conditional UPDATE (`WHERE status = …`),
so whoever loses a race changes nothing and learns it from the row count.
Timestamps are stored timezone-aware and always read back as UTC.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Row, create_engine, desc, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.store.tables import approval_requests, audit_events
from bot.domain.approvals import ApprovalRequest, AuditAction, AuditEvent, RequestStatus
from bot.domain.credits import Balance, ChangeKind, CreditChange, Period
from bot.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it names the lock that serialises migrations across instances.
_MIGRATION_LOCK = 7_284_113_001


def create_store_engine(url: str) -> Engine:
    """An engine for `url` (already normalised by config), tuned for threads."""
    if url.startswith("sqlite"):
        # Wait for the write lock instead of failing at once when threads contend.
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe from several instances)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as error:
        raise StoreError(describe_failure(engine, error)) from error


def database_location(engine: Engine) -> str:
    """Where the database is, for messages: host, port and name, never the password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database or ':memory:'}"
    host = url.host or "localhost"
    port = url.port or 5432
    return f"PostgreSQL at {host}:{port}/{url.database or ''}"


def describe_failure(engine: Engine, error: SQLAlchemyError) -> str:
    """One line: where the database is and why it failed (the driver's own first line).

    The driver's text never holds the password, but it is scrubbed anyway.
    """
    cause = str(getattr(error, "orig", None) or error)
    first = next((line.strip() for line in cause.splitlines() if line.strip()), "")
    password = engine.url.password
    if password:
        first = first.replace(str(password), "***")
    return f"{database_location(engine)}: {first or type(error).__name__}"


class SqlStore:
    """The `Store` port over SQLAlchemy Core."""

    def __init__(self, engine: Engine, *, logger: logging.Logger | None = None) -> None:
        self._engine = engine
        self._logger = logger or logging.getLogger("bot.store")

    @classmethod
    def from_url(cls, url: str, *, run_migrations: bool = True) -> SqlStore:
        engine = create_store_engine(url)
        if run_migrations:
            migrate(engine)
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as error:
            self._logger.exception("database error")
            raise StoreError(f"the database failed ({type(error).__name__})") from error

    # --- approval requests ------------------------------------------------------------

    def create_request(
        self, change: CreditChange, *, requester_id: str, now: datetime, expires_at: datetime
    ) -> ApprovalRequest:
        values = {
            "kind": change.kind.value,
            "target": change.user,
            "credits": change.credits,
            "period": change.period.value if change.period else None,
            "start_date": change.start,
            "end_date": change.end,
            "initial_credits": change.initial,
            "requester_id": requester_id,
            "requested_at": now,
            "expires_at": expires_at,
            "status": RequestStatus.PENDING.value,
        }
        with self.transaction() as connection:
            row = connection.execute(
                insert(approval_requests).values(values).returning(approval_requests)
            ).one()
        return _request(row)

    def attach_message(self, request_id: int, *, channel_id: str, message_ts: str) -> None:
        with self.transaction() as connection:
            connection.execute(
                update(approval_requests)
                .where(approval_requests.c.id == request_id)
                .values(channel_id=channel_id, message_ts=message_ts)
            )

    def get_request(self, request_id: int) -> ApprovalRequest | None:
        with self.transaction() as connection:
            row = connection.execute(
                select(approval_requests).where(approval_requests.c.id == request_id)
            ).one_or_none()
        return _request(row) if row else None

    def claim(
        self, request_id: int, *, approver_id: str, now: datetime, executor: str
    ) -> ApprovalRequest | None:
        return self._transition(
            request_id,
            [RequestStatus.PENDING],
            unexpired_at=now,
            status=RequestStatus.EXECUTING.value,
            decided_by=approver_id,
            decided_at=now,
            executor=executor,
        )

    def finish(
        self,
        request_id: int,
        *,
        status: RequestStatus,
        executor: str,
        before: Balance | None,
        after: Balance | None,
        detail: str | None,
    ) -> ApprovalRequest | None:
        # `unknown` is accepted too: another instance may have marked this request an
        # orphan while we were still waiting for SendGrid; our result is the truth.
        return self._transition(
            request_id,
            [RequestStatus.EXECUTING, RequestStatus.UNKNOWN],
            owned_by=executor,
            status=status.value,
            before_balance=_balance_json(before),
            after_balance=_balance_json(after),
            detail=detail,
        )

    def deny(
        self, request_id: int, *, approver_id: str, reason: str | None, now: datetime
    ) -> ApprovalRequest | None:
        return self._transition(
            request_id,
            [RequestStatus.PENDING],
            unexpired_at=now,
            status=RequestStatus.DENIED.value,
            decided_by=approver_id,
            decided_at=now,
            reason=reason,
        )

    def _transition(
        self,
        request_id: int,
        from_statuses: list[RequestStatus],
        *,
        unexpired_at: datetime | None = None,
        owned_by: str | None = None,
        **values: Any,
    ) -> ApprovalRequest | None:
        """One conditional UPDATE: applies only if the request is still in `from_statuses`
        (and unexpired, and executed by `owned_by`, when given). None: someone else won."""
        table = approval_requests.c
        conditions = [table.id == request_id, table.status.in_([s.value for s in from_statuses])]
        if unexpired_at is not None:
            conditions.append(table.expires_at > unexpired_at)
        if owned_by is not None:
            conditions.append(table.executor == owned_by)
        statement = (
            update(approval_requests)
            .where(*conditions)
            .values(**values)
            .returning(approval_requests)
        )
        with self.transaction() as connection:
            row = connection.execute(statement).one_or_none()
        return _request(row) if row else None

    def expire_due(self, now: datetime) -> list[ApprovalRequest]:
        statement = (
            update(approval_requests)
            .where(
                approval_requests.c.status == RequestStatus.PENDING.value,
                approval_requests.c.expires_at <= now,
            )
            .values(status=RequestStatus.EXPIRED.value, decided_at=now)
            .returning(approval_requests)
        )
        with self.transaction() as connection:
            rows = connection.execute(statement).all()
        return [_request(row) for row in rows]

    def orphans_to_unknown(self, *, live_executor: str, now: datetime) -> list[ApprovalRequest]:
        statement = (
            update(approval_requests)
            .where(
                approval_requests.c.status == RequestStatus.EXECUTING.value,
                approval_requests.c.executor != live_executor,
            )
            .values(
                status=RequestStatus.UNKNOWN.value,
                detail="the bot restarted while this change was being sent to SendGrid",
            )
            .returning(approval_requests)
        )
        with self.transaction() as connection:
            rows = connection.execute(statement).all()
        return [_request(row) for row in rows]

    def open_requests(self) -> list[ApprovalRequest]:
        open_statuses = [s.value for s in RequestStatus if s.is_open]
        with self.transaction() as connection:
            rows = connection.execute(
                select(approval_requests)
                .where(approval_requests.c.status.in_(open_statuses))
                .order_by(approval_requests.c.id)
            ).all()
        return [_request(row) for row in rows]

    # --- audit trail -------------------------------------------------------------------

    def record(self, event: AuditEvent) -> int:
        """Append an event; returns its id (for `complete`)."""
        values = {
            "at": event.at,
            "actor_id": event.actor_id,
            "action": event.action.value,
            "target": event.target,
            "request_id": event.request_id,
            "arguments": json.dumps(event.arguments, sort_keys=True, default=str)
            if event.arguments
            else None,
            "outcome": event.outcome,
            "before_balance": _balance_json(event.before),
            "after_balance": _balance_json(event.after),
        }
        with self.transaction() as connection:
            return int(
                connection.execute(
                    insert(audit_events).values(values).returning(audit_events.c.id)
                ).scalar_one()
            )

    def complete(
        self,
        event_id: int,
        *,
        action: AuditAction,
        outcome: str,
        before: Balance | None,
        after: Balance | None,
    ) -> None:
        """Fill in what SendGrid answered on an event written before the call."""
        with self.transaction() as connection:
            connection.execute(
                update(audit_events)
                .where(audit_events.c.id == event_id)
                .values(
                    action=action.value,
                    outcome=outcome,
                    before_balance=_balance_json(before),
                    after_balance=_balance_json(after),
                )
            )

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[AuditEvent]:
        statement = select(audit_events).order_by(desc(audit_events.c.id)).limit(limit)
        if target is not None:
            statement = statement.where(audit_events.c.target == target)
        with self.transaction() as connection:
            rows = connection.execute(statement).all()
        return [_event(row) for row in rows]


# --- rows ↔ values ---------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _balance_json(balance: Balance | None) -> str | None:
    if balance is None:
        return None
    return json.dumps(
        {
            "unlimited": balance.unlimited,
            "remaining": balance.remaining,
            "allowance": balance.allowance,
            "period": balance.period.value if balance.period else None,
            "last_reset": balance.last_reset.isoformat() if balance.last_reset else None,
        }
    )


def _balance(raw: str | None) -> Balance | None:
    if not raw:
        return None
    data: dict[str, Any] = json.loads(raw)
    return Balance(
        unlimited=bool(data["unlimited"]),
        remaining=data.get("remaining"),
        allowance=data.get("allowance"),
        period=Period(data["period"]) if data.get("period") else None,
        last_reset=date.fromisoformat(data["last_reset"]) if data.get("last_reset") else None,
    )


def _request(row: Row[Any]) -> ApprovalRequest:
    m = row._mapping
    change = CreditChange(
        kind=ChangeKind(m["kind"]),
        user=m["target"],
        credits=m["credits"],
        period=Period(m["period"]) if m["period"] else None,
        start=m["start_date"],
        end=m["end_date"],
        initial=m["initial_credits"],
    )
    requested_at = _utc(m["requested_at"])
    expires_at = _utc(m["expires_at"])
    assert requested_at is not None
    assert expires_at is not None
    return ApprovalRequest(
        id=m["id"],
        change=change,
        requester_id=m["requester_id"],
        requested_at=requested_at,
        expires_at=expires_at,
        status=RequestStatus(m["status"]),
        decided_by=m["decided_by"],
        decided_at=_utc(m["decided_at"]),
        reason=m["reason"],
        channel_id=m["channel_id"],
        message_ts=m["message_ts"],
        before=_balance(m["before_balance"]),
        after=_balance(m["after_balance"]),
        detail=m["detail"],
    )


def _event(row: Row[Any]) -> AuditEvent:
    m = row._mapping
    at = _utc(m["at"])
    assert at is not None
    return AuditEvent(
        id=m["id"],
        at=at,
        actor_id=m["actor_id"],
        action=AuditAction(m["action"]),
        target=m["target"],
        request_id=m["request_id"],
        arguments=json.loads(m["arguments"]) if m["arguments"] else None,
        outcome=m["outcome"],
        before=_balance(m["before_balance"]),
        after=_balance(m["after_balance"]),
    )
