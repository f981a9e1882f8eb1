"""One scheduler at a time: a database lock the `clock` process must hold to run jobs.

PostgreSQL: a session advisory lock on a connection kept open for as long as
the process lives; if the process dies, the connection closes and the lock is
free at once. SQLite: a lease row the holder renews; a dead holder's lease
expires after `lease`.

Holding is checked, never assumed: each `acquire()` by the holder confirms the
lock is still its own (on PostgreSQL, that the lock connection answers and
`pg_locks` shows its backend holding the key; on SQLite, that the lease renews).
A connection terminated by an administrator, a failover or a network cut frees
the lock for another process; the former holder learns it at its next check,
drops that connection and from then on competes for the lock like a newcomer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.adapters.store.tables import scheduler_leases

_ADVISORY_KEY = 7_284_113_002
# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32
# bits) and objsubid 1.
_HOLDING = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND objsubid = 1"
    " AND classid::bigint = :key >> 32 AND objid::bigint = :key & 4294967295)"
)


class SchedulerLock:
    """`acquire()` → True if this process may run the scheduled jobs (call it again to
    renew, and before every job: it confirms the lock is still held).

    `advisory=False` always uses a lease row (for short locks such as "a sweep is
    running", which must also be released on PostgreSQL without closing a session).
    `clock` gives the time leases are measured by. Safe to call from several threads.
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._holder = holder
        self._name = name
        self._lease = lease
        self._advisory_allowed = advisory
        self._logger = logger or logging.getLogger("bot.clock")
        self._clock = clock
        self._connection: Connection | None = None
        self._mutex = threading.Lock()

    def acquire(self, now: datetime | None = None) -> bool:
        with self._mutex:
            try:
                if self._advisory_allowed and self._engine.dialect.name == "postgresql":
                    return self._advisory()
                return self._leased(now or self._clock())
            except SQLAlchemyError:
                self._logger.exception("could not check the scheduler lock; not running jobs")
                return False

    def release(self) -> None:
        with self._mutex:
            self._release()

    def _release(self) -> None:
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
            return self._still_held(self._connection)
        connection = self._engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}
            ).scalar()
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()  # it may hold the lock: closing it lets it go
            connection.close()
            raise
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def _still_held(self, connection: Connection) -> bool:
        """The session lock is held while its connection lives: ask that connection.

        If the connection is gone, or PostgreSQL no longer lists the lock as this
        backend's, the lock is lost: the connection is dropped, and this call says
        so. The next call competes for the lock on a new connection.
        """
        try:
            held = bool(connection.execute(_HOLDING, {"key": _ADVISORY_KEY}).scalar())
            connection.commit()
        except SQLAlchemyError as exc:
            held, reason = (
                False,
                f"its connection failed ({type(getattr(exc, 'orig', None) or exc).__name__})",
            )
        else:
            reason = "PostgreSQL no longer lists it as held by its connection"
        if held:
            return True
        self._logger.info("the scheduler lock is no longer held: %s", reason)
        self._connection = None
        # Closed, never returned to the pool: if the session somehow still holds the
        # lock (a check that failed on a live connection), closing it lets it go, so
        # there is no holder that runs no jobs.
        connection.invalidate()
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
