"""The fleet's SendGrid rate budget in the shared database (`RateBudget` over SQLAlchemy).

Each take is one short transaction, serialised across every process, and may grant
several requests at once (the threads of one process waiting together):

1. lock the budget's row (`SELECT … FOR UPDATE` on PostgreSQL; `BEGIN IMMEDIATE` on
   SQLite, which takes the write lock up front and waits for it, so a busy database
   means a short wait, never "database is locked");
2. only then read the time and the `limit`-th most recent grant: a statement run
   after the lock sees every grant committed before it (a fresh snapshot in READ
   COMMITTED), and a clock read before the lock wait could be stale;
3. count the grants in the window, insert as many as asked and still fit, or
   answer how long to wait.

Time comes from the database server on PostgreSQL (`clock_timestamp()`), so
instances on several hosts need not agree on their clocks; on SQLite every process
is on one host and uses its clock. Old grants are pruned now and then.

On PostgreSQL the three steps are one call, `credits_take_grants` (migration 0010),
in autocommit: one round trip per take instead of seven (BEGIN, five statements,
COMMIT), each of which waited for the interpreter lock again in a busy process.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.store.tables import rate_budgets, rate_grants
from bot.errors import StoreError

PRUNE_EVERY = 100

_TAKE_GRANTS = text(
    "SELECT granted, delay FROM credits_take_grants(CAST(:budget AS varchar), "
    "CAST(:count AS integer), CAST(:limit AS integer), CAST(:window AS double precision), "
    "CAST(:now AS double precision))"
)


class SqlRateBudget:
    """A `bot.adapters.sendgrid.ratelimit.RateBudget` shared through the database.

    `name` tells budgets apart (one per SendGrid account). `clock` (epoch seconds)
    replaces the time source, for tests; by default PostgreSQL's clock, or this
    host's on SQLite.
    """

    def __init__(
        self, engine: Engine, *, name: str = "sendgrid", clock: Callable[[], float] | None = None
    ) -> None:
        self._engine = engine
        self._name = name
        self._postgres = engine.dialect.name == "postgresql"
        self._clock = clock
        self._grants = itertools.count(1)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def take(self, *, limit: int, window: float) -> float:
        granted, delay = self.take_many(1, limit=limit, window=window)
        return 0.0 if granted else delay

    def take_many(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        if self._postgres:
            return self._take_in_one_call(count, limit=limit, window=window)
        grants = rate_grants.c
        with self._transaction() as connection:
            paused_until = self._lock(connection)
            now = float(connection.execute(select(self._now())).scalar_one())
            if now < paused_until:
                return 0, paused_until - now
            recent = (
                select(grants.at)
                .where(grants.budget == self._name, grants.at > now - window)
                .order_by(grants.at.desc())
                .limit(limit)
                .subquery()
            )
            used, oldest = connection.execute(
                select(func.count(), func.min(recent.c.at)).select_from(recent)
            ).one()
            granted = min(count, limit - int(used))
            if granted <= 0:
                # The `limit`-th latest grant must leave the window before another enters.
                return 0, float(oldest) + window - now
            connection.execute(insert(rate_grants), [{"budget": self._name, "at": now}] * granted)
            if next(self._grants) % PRUNE_EVERY == 0:
                connection.execute(
                    delete(rate_grants).where(
                        grants.budget == self._name, grants.at <= now - window
                    )
                )
        return granted, 0.0

    def _take_in_one_call(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        """`take_many` on PostgreSQL: the server's function, in its own transaction."""
        now = self._clock() if self._clock is not None else None
        try:
            with self._autocommit.connect() as connection:
                granted, delay = connection.execute(
                    _TAKE_GRANTS,
                    {
                        "budget": self._name,
                        "count": count,
                        "limit": limit,
                        "window": window,
                        "now": now,
                    },
                ).one()
                if granted and next(self._grants) % PRUNE_EVERY == 0:
                    connection.execute(
                        delete(rate_grants).where(
                            rate_grants.c.budget == self._name,
                            rate_grants.c.at <= self._now() - window,
                        )
                    )
        except SQLAlchemyError as error:
            raise StoreError(
                f"the rate budget's database failed ({type(error).__name__})"
            ) from error
        return int(granted), float(delay)

    def pause(self, seconds: float) -> None:
        with self._transaction() as connection:
            paused_until = self._lock(connection)
            now = float(connection.execute(select(self._now())).scalar_one())
            connection.execute(
                update(rate_budgets)
                .where(rate_budgets.c.name == self._name)
                .values(paused_until=max(paused_until, now + seconds))
            )

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                if not self._postgres:
                    # pysqlite would begin a deferred transaction at the first INSERT, and a
                    # reader upgrading to a writer can fail at once with "database is locked";
                    # IMMEDIATE takes the write lock now, waiting up to the busy timeout.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
        except SQLAlchemyError as error:
            raise StoreError(
                f"the rate budget's database failed ({type(error).__name__})"
            ) from error

    def _lock(self, connection: Connection) -> float:
        """Lock this budget's row (creating it on first use); returns its `paused_until`."""
        locked = select(rate_budgets.c.paused_until).where(rate_budgets.c.name == self._name)
        if self._postgres:
            # A grant need not survive a server crash (the window would forget the last
            # few); not waiting for the WAL flush cuts its cost by more than half.
            # `set_config(…, true)` is SET LOCAL: this transaction only, no extra round trip.
            locked = locked.add_columns(
                func.set_config("synchronous_commit", "off", True)
            ).with_for_update()
        paused_until = connection.execute(locked).scalar_one_or_none()
        if paused_until is None:
            dialect = postgresql if self._postgres else sqlite
            connection.execute(
                dialect.insert(rate_budgets)
                .values(name=self._name, paused_until=0.0)
                .on_conflict_do_nothing()
            )
            paused_until = connection.execute(locked).scalar_one()
        return float(paused_until)

    def _now(self) -> ColumnElement[float]:
        """The current time in epoch seconds, read when the statement runs (after the lock)."""
        if self._clock is None and self._postgres:
            return cast(func.extract("epoch", func.clock_timestamp()), Float)
        return literal(self._clock() if self._clock is not None else time.time(), Float)
