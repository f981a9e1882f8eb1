"""One scheduler at a time: a database lock the `clock` process must hold to run jobs.

PostgreSQL: a session advisory lock on a connection kept open for as long as
the process lives; if the process dies, the connection closes and the lock is
free at once. SQLite: a lease row the holder renews; a dead holder's lease
expires after `lease`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.adapters.store.tables import scheduler_leases

_ADVISORY_KEY = 7_284_113_002


class SchedulerLock:
    """`acquire()` → True if this process may run the scheduled jobs (call it again to renew).

    `advisory=False` always uses a lease row (for short locks such as "a sweep is
    running", which must also be released on PostgreSQL without closing a session).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str,
        name: str = "clock",
        lease: timedelta = timedelta(minutes=2),
        advisory: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        self._engine = engine
        self._holder = holder
        self._name = name
        self._lease = lease
        self._advisory_allowed = advisory
        self._logger = logger or logging.getLogger("bot.clock")
        self._connection: Connection | None = None

    def acquire(self, now: datetime | None = None) -> bool:
        try:
            if self._advisory_allowed and self._engine.dialect.name == "postgresql":
                return self._advisory()
            return self._leased(now or datetime.now(UTC))
        except SQLAlchemyError:
            self._logger.exception("could not check the scheduler lock; not running jobs")
            return False

    def release(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            # Closing a pooled connection only returns it to the pool, session and lock
            # included: unlock explicitly, and drop the connection if that fails.
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
                connection.commit()
                connection.close()
            except SQLAlchemyError:
                connection.invalidate()
            return
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    update(scheduler_leases)
                    .where(
                        scheduler_leases.c.name == self._name,
                        scheduler_leases.c.holder == self._holder,
                    )
                    .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC))
                )
        except SQLAlchemyError:
            self._logger.exception("could not release the scheduler lease")

    def _advisory(self) -> bool:
        if self._connection is not None:
            return True  # a session lock is held until the connection closes
        connection = self._engine.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}
        ).scalar()
        connection.commit()
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def _leased(self, now: datetime) -> bool:
        expires = now + self._lease
        with self._engine.begin() as connection:
            taken = connection.execute(
                update(scheduler_leases)
                .where(
                    scheduler_leases.c.name == self._name,
                    (scheduler_leases.c.holder == self._holder)
                    | (scheduler_leases.c.expires_at < now),
                )
                .values(holder=self._holder, expires_at=expires)
            ).rowcount
        if taken:
            return True
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(scheduler_leases).values(
                        name=self._name, holder=self._holder, expires_at=expires
                    )
                )
        except IntegrityError:
            return False  # someone else holds a live lease
        return True
