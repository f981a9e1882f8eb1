"""`SqlStore`: approval requests and the audit trail in SQLite or PostgreSQL.

Every state change of a request is one conditional UPDATE (`WHERE status = …`),
so whoever loses a race changes nothing and learns it from the row count.
Timestamps are stored timezone-aware and always read back as UTC.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    create_engine,
    delete,
    desc,
    event,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from bot.adapters.store import ledger
from bot.adapters.store.instances import (
    FORGET_INSTANCES_AFTER,
    instance_is_live,
)
from bot.adapters.store.tables import (
    approval_requests,
    audit_events,
    confirmations,
    credit_changes,
    home_viewers,
    instances,
)
from bot.domain.approvals import (
    ApprovalRequest,
    AuditAction,
    AuditEvent,
    ChangeOrigin,
    ChangeRecord,
    ChangeState,
    Reminder,
    RequestStatus,
)
from bot.domain.credits import (
    Balance,
    ChangeKind,
    CreditChange,
    Period,
    change_arguments,
    change_from_arguments,
)
from bot.domain.policy import BudgetUse
from bot.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it names the lock that serialises migrations across instances.
_MIGRATION_LOCK = 7_284_113_001
_BUDGET_LOCK = 7_284_113_006  # serialises auto-approval budget checks across instances


# Connections a process keeps open when it does not say how many threads use them
# (the CLI, the clock): as many as the pool used to allow at most.
DEFAULT_THREADS = 30
# Above one per thread, for a thread that holds two at once (a lock and a grant).
SPARE_CONNECTIONS = 10


def create_store_engine(url: str, *, threads: int = DEFAULT_THREADS) -> Engine:
    """An engine for `url` (already normalised by config), tuned for `threads` threads
    that may each hold a connection at once.

    The pool keeps one connection per thread once opened (`pool_size`), opened only
    when needed. It used to keep 10 and allow 20 more that were closed on return: a
    burst of 50 commands opened and closed some 18 PostgreSQL connections every time
    (a new server process each, on the replies' path), and 50 work threads queued
    for 30 connections.
    """
    if url.startswith("sqlite"):
        # Wait for the write lock instead of failing at once when threads contend.
        return create_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=threads,
            max_overflow=SPARE_CONNECTIONS,
        )
    return create_engine(url, pool_pre_ping=True, pool_size=threads, max_overflow=SPARE_CONNECTIONS)


@functools.cache
def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe from several instances).

    PostgreSQL serialises migrators with an advisory lock. SQLite has none: two
    processes starting on one file at once may collide, and the loser tries again
    (the second attempt finds the schema current).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    attempts = 1 if engine.dialect.name == "postgresql" else 3
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        except SQLAlchemyError as error:
            if attempt == attempts:
                raise StoreError(describe_failure(engine, error)) from error
            time.sleep(0.5 * attempt)


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

    def __init__(
        self, engine: Engine, *, logger: logging.Logger | None = None, migrated: bool = True
    ) -> None:
        self._engine = engine
        self._logger = logger or logging.getLogger("bot.store")
        # A new connection may be to a database recreated empty (a restore, a failover to
        # a fresh server): the schema is checked again before the next transaction.
        self._recheck_schema = threading.Event()
        self._schema_lock = threading.Lock()
        if migrated:
            event.listen(engine, "connect", lambda *_: self._recheck_schema.set())

    @classmethod
    def from_url(
        cls, url: str, *, run_migrations: bool = True, threads: int = DEFAULT_THREADS
    ) -> SqlStore:
        """`threads`: how many of the process's threads may use the database at once."""
        engine = create_store_engine(url, threads=threads)
        if run_migrations:
            migrate(engine)
        return cls(engine, migrated=run_migrations)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            if self._recheck_schema.is_set():
                self._ensure_schema()
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as error:
            if isinstance(error, ProgrammingError | OperationalError):
                self._recheck_schema.set()  # e.g. "no such table" after a restore
            self._logger.exception("database error")
            raise StoreError(f"the database failed ({type(error).__name__})") from error
        except StoreError:
            self._recheck_schema.set()
            raise

    def _ensure_schema(self) -> None:
        """Migrate if the database is not at the newest revision (one cheap query if it is)."""
        with self._schema_lock:
            if not self._recheck_schema.is_set():
                return
            self._recheck_schema.clear()
            with self._engine.connect() as connection:
                try:
                    current = connection.execute(
                        text("SELECT version_num FROM alembic_version")
                    ).scalar()
                except (ProgrammingError, OperationalError):
                    current = None
            if current != head_revision():
                self._logger.warning("the database schema is not current; migrating again")
                migrate(self._engine)

    # --- approval requests ------------------------------------------------------------

    def create_request(
        self,
        change: CreditChange,
        *,
        requester_id: str,
        now: datetime,
        expires_at: datetime,
        approvals_needed: int = 1,
    ) -> ApprovalRequest:
        values = {
            "change_reason": change.reason,
            "approvals_needed": approvals_needed,
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

    def approve_first(
        self, request_id: int, *, approver_id: str, now: datetime
    ) -> ApprovalRequest | None:
        """The first of two approvals: recorded if the request is pending, unexpired and
        has no first approver yet (one conditional UPDATE); None if someone else was first."""
        with self.transaction() as connection:
            return self._transition_in(
                connection,
                request_id,
                [RequestStatus.PENDING],
                unexpired_at=now,
                first_of_two=True,
                first_approver=approver_id,
                first_approved_at=now,
            )

    def claim(
        self, request_id: int, *, approver_id: str, now: datetime, executor: str
    ) -> tuple[ApprovalRequest, ChangeRecord] | None:
        with self.transaction() as connection:
            claimed = self._transition_in(
                connection,
                request_id,
                [RequestStatus.PENDING],
                unexpired_at=now,
                final_approver=approver_id,
                status=RequestStatus.EXECUTING.value,
                decided_by=approver_id,
                decided_at=now,
                executor=executor,
            )
            if claimed is None:
                return None
            record = self._insert_change(
                connection,
                claimed.change,
                origin=ChangeOrigin.REQUEST,
                actor_id=approver_id,
                owner=executor,
                now=now,
                request_id=claimed.id,
            )
        return claimed, record

    # --- the change lifecycle ------------------------------------------------------------

    def begin_change(
        self, change: CreditChange, *, actor_id: str, owner: str, now: datetime, audit: AuditEvent
    ) -> ChangeRecord:
        with self.transaction() as connection:
            return self._insert_direct(
                connection, change, actor_id=actor_id, owner=owner, now=now, audit=audit
            )

    def begin_budgeted_change(
        self,
        change: CreditChange,
        *,
        actor_id: str,
        owner: str,
        now: datetime,
        audit: AuditEvent,
        budget: int,
        window: timedelta,
    ) -> ChangeRecord | BudgetUse:
        """An auto-approved change's `intent`, only if it fits the budget.

        The sum of auto-approved credits in the window (by `actor_id`, and to the
        change's target) is read and the intent inserted under one lock taken for the
        whole transaction, so instances cannot both see room for the last slot:
        PostgreSQL's transaction-scoped advisory lock, SQLite's `BEGIN IMMEDIATE`.
        Intents, sent, applied and unknown changes all count; failed ones do not.
        Returns what was used instead of a record when the change does not fit.
        """
        credits = change.credits or 0
        since = now - window
        table = credit_changes.c
        counted = [
            ChangeState.INTENT.value,
            ChangeState.SENT.value,
            ChangeState.APPLIED.value,
            ChangeState.UNKNOWN.value,
        ]

        def used(*condition: Any) -> Any:
            return (
                select(func.coalesce(func.sum(table.credits), 0))
                .where(
                    table.auto_approved.is_(True),
                    table.created_at > since,
                    table.state.in_(counted),
                    *condition,
                )
                .scalar_subquery()
            )

        with self._locked_transaction(_BUDGET_LOCK) as connection:
            row = connection.execute(
                select(used(table.actor_id == actor_id), used(table.target == change.user))
            ).one()
            use = BudgetUse(by_actor=int(row[0]), on_target=int(row[1]))
            if not use.allows(credits, budget):
                return use
            return self._insert_direct(
                connection,
                change,
                actor_id=actor_id,
                owner=owner,
                now=now,
                audit=audit,
                auto_approved=True,
            )

    def _insert_direct(
        self,
        connection: Connection,
        change: CreditChange,
        *,
        actor_id: str,
        owner: str,
        now: datetime,
        audit: AuditEvent,
        auto_approved: bool = False,
    ) -> ChangeRecord:
        """A direct change's audit event and `intent` record, in `connection`'s transaction."""
        event_id = self._insert_event(connection, audit)
        return self._insert_change(
            connection,
            change,
            origin=ChangeOrigin.DIRECT,
            actor_id=actor_id,
            owner=owner,
            now=now,
            audit_event_id=event_id,
            auto_approved=auto_approved,
        )

    @contextmanager
    def _locked_transaction(self, key: int) -> Iterator[Connection]:
        """A transaction serialised with every other holder of `key` (see begin_budgeted_change)."""
        with self.transaction() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            else:
                # pysqlite begins lazily; IMMEDIATE takes the write lock now (waiting up to
                # the busy timeout), so a read-then-insert cannot interleave with another.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection

    # --- confirmations -------------------------------------------------------------------

    def create_confirmation(
        self,
        change: CreditChange,
        *,
        actor_id: str,
        auto_approved: bool,
        now: datetime,
        expires_at: datetime,
    ) -> int:
        with self.transaction() as connection:
            return int(
                connection.execute(
                    insert(confirmations)
                    .values(
                        actor_id=actor_id,
                        arguments=json.dumps(change_arguments(change), sort_keys=True),
                        auto_approved=auto_approved,
                        status="pending",
                        created_at=now,
                        expires_at=expires_at,
                    )
                    .returning(confirmations.c.id)
                ).scalar_one()
            )

    def take_confirmation(
        self, confirmation_id: int, *, actor_id: str, now: datetime, confirm: bool
    ) -> tuple[CreditChange, bool] | None:
        """`pending → confirmed|cancelled` by its author before it expires: one conditional
        UPDATE, so a change is confirmed at most once. Returns (change, auto_approved)."""
        table = confirmations.c
        with self.transaction() as connection:
            row = connection.execute(
                update(confirmations)
                .where(
                    table.id == confirmation_id,
                    table.actor_id == actor_id,
                    table.status == "pending",
                    table.expires_at > now,
                )
                .values(status="confirmed" if confirm else "cancelled")
                .returning(table.arguments, table.auto_approved)
            ).one_or_none()
        if row is None:
            return None
        return change_from_arguments(json.loads(row.arguments)), bool(row.auto_approved)

    def mark_sent(self, change_id: int, *, owner: str, before: Balance, now: datetime) -> bool:
        table = credit_changes.c
        with self.transaction() as connection:
            updated = connection.execute(
                update(credit_changes)
                .where(
                    table.id == change_id,
                    table.owner == owner,
                    table.state == ChangeState.INTENT.value,
                )
                .values(
                    state=ChangeState.SENT.value,
                    before_balance=_balance_json(before),
                    updated_at=now,
                )
            ).rowcount
        return bool(updated)

    def still_sending(self, change_id: int, *, owner: str) -> bool:
        table = credit_changes.c
        with self.transaction() as connection:
            state = connection.execute(
                select(table.state).where(table.id == change_id, table.owner == owner)
            ).scalar_one_or_none()
        return state == ChangeState.SENT.value

    def settle(
        self,
        record: ChangeRecord,
        *,
        state: ChangeState,
        before: Balance | None,
        after: Balance | None,
        detail: str,
        now: datetime,
        note: AuditEvent | None = None,
    ) -> tuple[bool, ApprovalRequest | None]:
        assert state.is_final
        table = credit_changes.c
        with self.transaction() as connection:
            updated = connection.execute(
                update(credit_changes)
                .where(
                    table.id == record.id,
                    table.owner == record.owner,
                    # `unknown` too: recovery may have taken a slow owner for gone;
                    # what the owner learnt from SendGrid is the truth.
                    table.state.in_(
                        [
                            ChangeState.INTENT.value,
                            ChangeState.SENT.value,
                            ChangeState.UNKNOWN.value,
                        ]
                    ),
                )
                .values(
                    state=state.value,
                    before_balance=_balance_json(before) or table.before_balance,
                    after_balance=_balance_json(after),
                    detail=detail,
                    updated_at=now,
                )
            ).rowcount
            if not updated:
                return False, None
            if record.audit_event_id is not None:
                completed = connection.execute(
                    update(audit_events)
                    .where(audit_events.c.id == record.audit_event_id)
                    .values(
                        action=_AUDIT_FOR_STATE[state].value,
                        outcome=detail,
                        before_balance=_balance_json(before),
                        after_balance=_balance_json(after),
                    )
                    .returning(audit_events)
                ).all()
                ledger.seal(connection, completed)
            if note is not None:
                self._insert_event(connection, note)
            request = None
            if record.request_id is not None:
                request = self._transition_in(
                    connection,
                    record.request_id,
                    [RequestStatus.EXECUTING, RequestStatus.UNKNOWN],
                    status=_REQUEST_FOR_STATE[state].value,
                    before_balance=_balance_json(before),
                    after_balance=_balance_json(after),
                    detail=detail,
                )
        return True, request

    def abandoned_changes(self, now: datetime) -> list[ChangeRecord]:
        unfinished = [ChangeState.INTENT.value, ChangeState.SENT.value]
        with self.transaction() as connection:
            rows = connection.execute(
                select(credit_changes)
                .where(credit_changes.c.state.in_(unfinished))
                .order_by(credit_changes.c.id)
            ).all()
            owners = {row.owner for row in rows}
            live = self._live_instances(connection, owners, now) if owners else set()
        return [_change_record(row) for row in rows if row.owner not in live]

    def unfinished_changes(self, owner: str) -> list[ChangeRecord]:
        unfinished = [ChangeState.INTENT.value, ChangeState.SENT.value]
        with self.transaction() as connection:
            rows = connection.execute(
                select(credit_changes)
                .where(credit_changes.c.owner == owner, credit_changes.c.state.in_(unfinished))
                .order_by(credit_changes.c.id)
            ).all()
        return [_change_record(row) for row in rows]

    # --- live instances --------------------------------------------------------------------

    def register_instance(self, instance_id: str, *, kind: str, now: datetime) -> None:
        """Record a starting instance (and forget instances silent for a week that own
        no unfinished change)."""
        table = instances.c
        unfinished = [ChangeState.INTENT.value, ChangeState.SENT.value]
        with self.transaction() as connection:
            connection.execute(
                delete(instances).where(
                    table.heartbeat_at < now - FORGET_INSTANCES_AFTER,
                    ~exists().where(
                        credit_changes.c.owner == table.id,
                        credit_changes.c.state.in_(unfinished),
                    ),
                )
            )
            connection.execute(
                insert(instances).values(
                    id=instance_id, kind=kind, started_at=now, heartbeat_at=now
                )
            )

    def heartbeat(self, instance_id: str, *, now: datetime) -> None:
        with self.transaction() as connection:
            connection.execute(
                update(instances).where(instances.c.id == instance_id).values(heartbeat_at=now)
            )

    def stop_instance(self, instance_id: str, *, now: datetime) -> None:
        with self.transaction() as connection:
            connection.execute(
                update(instances).where(instances.c.id == instance_id).values(stopped_at=now)
            )

    def _live_instances(self, connection: Connection, ids: set[str], now: datetime) -> set[str]:
        """Which of `ids` may still be working (`instance_is_live`); an id never
        registered is gone."""
        rows = connection.execute(select(instances).where(instances.c.id.in_(ids))).all()
        live = set()
        for row in rows:
            beat = _utc(row.heartbeat_at)
            assert beat is not None
            if instance_is_live(
                row.id, stopped_at=_utc(row.stopped_at), heartbeat_at=beat, now=now
            ):
                live.add(row.id)
        return live

    def _insert_change(
        self,
        connection: Connection,
        change: CreditChange,
        *,
        origin: ChangeOrigin,
        actor_id: str,
        owner: str,
        now: datetime,
        request_id: int | None = None,
        audit_event_id: int | None = None,
        auto_approved: bool = False,
    ) -> ChangeRecord:
        row = connection.execute(
            insert(credit_changes)
            .values(
                auto_approved=auto_approved,
                credits=change.credits,
                origin=origin.value,
                request_id=request_id,
                audit_event_id=audit_event_id,
                actor_id=actor_id,
                target=change.user,
                arguments=json.dumps(change_arguments(change), sort_keys=True),
                state=ChangeState.INTENT.value,
                owner=owner,
                created_at=now,
                updated_at=now,
            )
            .returning(credit_changes)
        ).one()
        return _change_record(row)

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

    def cancel(
        self, request_id: int, *, requester_id: str, now: datetime
    ) -> ApprovalRequest | None:
        return self._transition(
            request_id,
            [RequestStatus.PENDING],
            requested_by=requester_id,
            status=RequestStatus.CANCELLED.value,
            decided_by=requester_id,
            decided_at=now,
        )

    def resolve(
        self,
        request_id: int,
        *,
        approver_id: str,
        applied: bool,
        detail: str,
        after: Balance,
        now: datetime,
    ) -> ApprovalRequest | None:
        status = RequestStatus.APPROVED if applied else RequestStatus.FAILED
        return self._transition(
            request_id,
            [RequestStatus.UNKNOWN],
            status=status.value,
            detail=detail,
            after_balance=_balance_json(after),
        )

    def _transition(
        self,
        request_id: int,
        from_statuses: list[RequestStatus],
        *,
        unexpired_at: datetime | None = None,
        owned_by: str | None = None,
        requested_by: str | None = None,
        **values: Any,
    ) -> ApprovalRequest | None:
        """One conditional UPDATE: applies only if the request is still in `from_statuses`
        (and unexpired, and executed by `owned_by`, when given). None: someone else won."""
        with self.transaction() as connection:
            return self._transition_in(
                connection,
                request_id,
                from_statuses,
                unexpired_at=unexpired_at,
                owned_by=owned_by,
                requested_by=requested_by,
                **values,
            )

    def _transition_in(
        self,
        connection: Connection,
        request_id: int,
        from_statuses: list[RequestStatus],
        *,
        unexpired_at: datetime | None = None,
        owned_by: str | None = None,
        requested_by: str | None = None,
        first_of_two: bool = False,
        final_approver: str | None = None,
        **values: Any,
    ) -> ApprovalRequest | None:
        table = approval_requests.c
        conditions = [table.id == request_id, table.status.in_([s.value for s in from_statuses])]
        if first_of_two:
            conditions += [table.approvals_needed >= 2, table.first_approver.is_(None)]
        if final_approver is not None:
            # One approval needed, or a first one already given by someone else.
            conditions.append(
                (table.approvals_needed < 2)
                | (table.first_approver.is_not(None) & (table.first_approver != final_approver))
            )
        if unexpired_at is not None:
            conditions.append(table.expires_at > unexpired_at)
        if owned_by is not None:
            conditions.append(table.executor == owned_by)
        if requested_by is not None:
            conditions.append(table.requester_id == requested_by)
        statement = (
            update(approval_requests)
            .where(*conditions)
            .values(**values)
            .returning(approval_requests)
        )
        row = connection.execute(statement).one_or_none()
        return _request(row) if row else None

    def mark_reminded(self, reminder: Reminder, *, now: datetime) -> ApprovalRequest | None:
        table = approval_requests.c
        conditions = [
            table.id == reminder.request.id,
            table.status == RequestStatus.PENDING.value,
            table.reminders == reminder.request.reminders,
        ]
        values: dict[str, Any] = {"reminders": reminder.number}
        if reminder.escalate:
            conditions.append(table.escalated_at.is_(None))
            values["escalated_at"] = now
        with self.transaction() as connection:
            row = connection.execute(
                update(approval_requests)
                .where(*conditions)
                .values(**values)
                .returning(approval_requests)
            ).one_or_none()
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

    def orphans_to_unknown(self, *, now: datetime) -> list[ApprovalRequest]:
        table = approval_requests.c
        with self.transaction() as connection:
            executing = connection.execute(
                select(table.id, table.executor).where(
                    table.status == RequestStatus.EXECUTING.value,
                    ~exists().where(credit_changes.c.request_id == table.id),
                )
            ).all()
            executors = {row.executor for row in executing if row.executor}
            live = self._live_instances(connection, executors, now) if executors else set()
            gone = [row.id for row in executing if row.executor not in live]
            if not gone:
                return []
            rows = connection.execute(
                update(approval_requests)
                .where(table.id.in_(gone), table.status == RequestStatus.EXECUTING.value)
                .values(
                    status=RequestStatus.UNKNOWN.value,
                    detail="the bot restarted while this change was being sent to SendGrid",
                )
                .returning(approval_requests)
            ).all()
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

    def requests_by(self, requester_id: str, *, limit: int = 10) -> list[ApprovalRequest]:
        """The newest `limit` requests `requester_id` made, whatever became of them."""
        with self.transaction() as connection:
            rows = connection.execute(
                select(approval_requests)
                .where(approval_requests.c.requester_id == requester_id)
                .order_by(desc(approval_requests.c.id))
                .limit(limit)
            ).all()
        return [_request(row) for row in rows]

    # --- App Home viewers ----------------------------------------------------------------

    def saw_home(self, user_id: str, *, at: datetime) -> None:
        """`user_id` opened the App Home at `at` (their Home is refreshed after sweeps)."""
        with self.transaction() as connection:
            changed = connection.execute(
                update(home_viewers).where(home_viewers.c.user_id == user_id).values(opened_at=at)
            ).rowcount
            if not changed:
                connection.execute(insert(home_viewers).values(user_id=user_id, opened_at=at))

    def home_viewers(self, *, since: datetime, limit: int) -> list[str]:
        """Who opened the App Home since `since`, the most recent first, at most `limit`."""
        with self.transaction() as connection:
            rows = connection.execute(
                select(home_viewers.c.user_id)
                .where(home_viewers.c.opened_at >= since)
                .order_by(desc(home_viewers.c.opened_at), home_viewers.c.user_id)
                .limit(limit)
            ).scalars()
            return list(rows)

    # --- audit trail -------------------------------------------------------------------

    def record(self, event: AuditEvent) -> int:
        """Append an event; returns its id (for `complete`)."""
        with self.transaction() as connection:
            return self._insert_event(connection, event)

    def _insert_event(self, connection: Connection, event: AuditEvent) -> int:
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
        row = connection.execute(insert(audit_events).values(values).returning(audit_events)).one()
        ledger.seal(connection, [row])
        return int(row.id)

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[AuditEvent]:
        statement = select(audit_events).order_by(desc(audit_events.c.id)).limit(limit)
        if target is not None:
            statement = statement.where(audit_events.c.target == target)
        with self.transaction() as connection:
            rows = connection.execute(statement).all()
        return [_event(row) for row in rows]

    def audit_since(self, since: datetime) -> list[tuple[AuditEvent, ApprovalRequest | None]]:
        """Every event from `since`, oldest first, with the request it is about."""
        with self.transaction() as connection:
            rows = connection.execute(
                select(audit_events).where(audit_events.c.at >= since).order_by(audit_events.c.id)
            ).all()
            ids = {row.request_id for row in rows if row.request_id is not None}
            requests = {
                row.id: _request(row)
                for row in connection.execute(
                    select(approval_requests).where(approval_requests.c.id.in_(ids))
                )
            }
        return [(_event(row), requests.get(row.request_id)) for row in rows]

    def verify_ledger(self) -> ledger.LedgerReport:
        """Walk the audit ledger's hash chain (see `bot.adapters.store.ledger`)."""
        with self.transaction() as connection:
            return ledger.verify(connection)


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
        reason=m["change_reason"],
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
        reminders=m["reminders"] or 0,
        escalated_at=_utc(m["escalated_at"]),
        approvals_needed=m["approvals_needed"],
        first_approver=m["first_approver"],
    )


def _change_record(row: Row[Any]) -> ChangeRecord:
    m = row._mapping
    return ChangeRecord(
        id=m["id"],
        origin=ChangeOrigin(m["origin"]),
        change=change_from_arguments(json.loads(m["arguments"])),
        actor_id=m["actor_id"],
        owner=m["owner"],
        state=ChangeState(m["state"]),
        request_id=m["request_id"],
        audit_event_id=m["audit_event_id"],
        before=_balance(m["before_balance"]),
        after=_balance(m["after_balance"]),
        detail=m["detail"],
    )


_UNSETTLED_OR_UNKNOWN = (ChangeState.INTENT, ChangeState.SENT, ChangeState.UNKNOWN)
_AUDIT_FOR_STATE = {
    ChangeState.APPLIED: AuditAction.CHANGED,
    ChangeState.FAILED: AuditAction.FAILED,
    ChangeState.UNKNOWN: AuditAction.UNKNOWN,
}
_REQUEST_FOR_STATE = {
    ChangeState.APPLIED: RequestStatus.APPROVED,
    ChangeState.FAILED: RequestStatus.FAILED,
    ChangeState.UNKNOWN: RequestStatus.UNKNOWN,
}


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
