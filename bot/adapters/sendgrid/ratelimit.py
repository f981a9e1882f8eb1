"""One SendGrid rate budget for the whole fleet: a sliding window shared by every process.

SendGrid counts requests per account (v2: 600 per minute per user, reference §5),
not per process. Every SendGrid request first takes a *grant* from a `RateBudget`
that all of the bot's processes share (`serve` instances, the `clock`, a manual
`credits-bot sweep`): `bot.adapters.store.ratelimit.SqlRateBudget` keeps it in the
database they already share; `MemoryRateBudget` keeps it in one process (tests, or
a bot built without a database).

The guarantee: in **any** `window` seconds at most `limit` grants, fleet-wide. A
grant is recorded only if fewer than `limit` were recorded in the last
`window + margin` seconds (a sliding log). It is not a token bucket: a bucket's
burst plus its refill can exceed the limit in some window, or it must delay
bursts to avoid that. Here a burst that fits the window goes out at once, and
nothing past the limit ever does. `margin` (1 s, at most a tenth of the window)
absorbs the jitter between taking a grant and the request reaching SendGrid.

Priorities: interactive callers (`/credits` commands) may use the whole window.
The sweep (the `clock` process, `credits-bot sweep`) takes a grant only while
more than `reserve` of the window is free (SENDGRID_INTERACTIVE_RESERVE, 20% by
default): with 600/min it stops at 480 grants in the last minute, so commands
always find room even while a sweep of thousands of subusers runs.

A 429 pauses the whole fleet: `pause_for(Retry-After)` is stored in the budget,
and every process waits until it has passed.

When the shared budget cannot be reached (the database is down), reads must still
answer (writes are refused earlier: a change needs the database to record its
intent). The limiter then draws on a budget of its own process at a quarter of
the limit (`FALLBACK_SHARE`), so up to four instances cut off together still stay
within SendGrid's limit, and goes back to the shared one as soon as it answers.

Why not a library (compared November 2026):
- pyrate-limiter 4.x has SQLite and PostgreSQL buckets, but its `PostgresBucket`
  needs a psycopg `ConnectionPool` (a second pool beside SQLAlchemy's), creates its
  own table at run time outside our migrations, and takes the table lock with
  `NOWAIT`, so under contention a grant fails and the limiter sleeps and polls.
  Its `SQLiteBucket` wants a raw `sqlite3` connection and a file lock (`filelock`)
  for several processes. It has no priorities and no shared pause after a 429.
- limits 5.x (moving window) stores in memory, Redis, Memcached, MongoDB or etcd:
  a fleet would need Redis, an extra service the embedded default must not need.
- throttled-py 3.x: memory or Redis; the same objection.
- Redis itself earns no place: the instances already share a database, the
  budget costs one short transaction per request (well under SendGrid's own
  latency; `bench/ratelimit.py` measures it), and 600/min is ten grants a second.
So the budget is a small SQL sliding window on the SQLAlchemy engine the bot
already has: the same database, the same migrations, no extra service.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from bot.errors import StoreError

MonotonicClock = Callable[[], float]
Sleep = Callable[[float], None]

# Waits shorter than this are rounded up: a deficit of 1e-12 s would not move the clock.
_MIN_SLEEP = 1e-3
_MAX_MARGIN = 1.0
FALLBACK_SHARE = 0.25
# An ask leases at most this many grants beyond the threads waiting: as many as
# this limiter handed out in the last `_DEMAND_SECONDS` (a burst's later commands
# then find a grant here instead of waiting for another budget transaction).
LEASE_MAX = 25
_DEMAND_SECONDS = 1.0


class Priority(Enum):
    """Who is asking: a person waiting for a reply, or the background sweep."""

    INTERACTIVE = "interactive"
    SWEEP = "sweep"


class RateBudget(Protocol):
    """The grants given out to every process sharing one SendGrid account."""

    def take(self, *, limit: int, window: float) -> float:
        """Record one grant if fewer than `limit` were recorded in the last `window`
        seconds and no pause is in force, and return 0.0; otherwise record nothing and
        return the seconds until a grant may be possible."""
        ...

    def take_many(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        """Record up to `count` grants, as many as keep the last `window` seconds within
        `limit`, in one step: returns (grants recorded, 0.0), or (0, seconds until a
        grant may be possible)."""
        ...

    def pause(self, seconds: float) -> None:
        """No grants for anyone for `seconds` from now (extends a pause, never shortens it)."""
        ...


class MemoryRateBudget:
    """A `RateBudget` for one process (tests, benchmarks, a bot without a database)."""

    def __init__(self, *, clock: MonotonicClock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: deque[float] = deque()
        self._paused_until = 0.0

    def take(self, *, limit: int, window: float) -> float:
        granted, delay = self.take_many(1, limit=limit, window=window)
        return 0.0 if granted else delay

    def take_many(self, count: int, *, limit: int, window: float) -> tuple[int, float]:
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return 0, self._paused_until - now
            while self._grants and self._grants[0] <= now - window:
                self._grants.popleft()
            if len(self._grants) >= limit:
                # The grant that must leave the window before another may enter it.
                return 0, self._grants[-limit] + window - now
            granted = min(count, limit - len(self._grants))
            self._grants.extend([now] * granted)
            return granted, 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class SlidingWindowLimiter:
    """At most `limit` SendGrid requests in any `window` seconds, for everyone on `budget`.

    `acquire()` blocks until this caller has a grant and returns the seconds it
    waited; `pause_for(seconds)` holds every process on the budget (SendGrid said
    429). `priority=Priority.SWEEP` leaves `reserve` (a fraction) of the window to
    interactive callers. Threads of one limiter never ask the budget side by side:
    one asks for every thread waiting at that moment (a burst of 50 commands costs
    a few transactions, not 50 in a row), hands the grants out, and a full window
    costs one query per process, not one per waiting thread.

    Leases: while demand is recent (grants handed out in the last second) and the
    last ask got all it asked for, an ask also takes that many spare grants (at most
    `LEASE_MAX`), for the callers about to arrive. A spare is used within half the
    margin of being recorded or dropped, so the budget's `window + margin` still
    covers its real send; a 429 drops them too. What a lease can waste is bounded
    by the demand of the second before, and nothing is leased near a full window.
    """

    def __init__(
        self,
        *,
        limit: int,
        window: float = 60.0,
        budget: RateBudget | None = None,
        priority: Priority = Priority.INTERACTIVE,
        reserve: float = 0.2,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not 0.0 <= reserve < 1.0:
            raise ValueError("reserve must be a fraction in [0, 1)")
        self.limit = limit
        self.window = window
        self.priority = priority
        # The sweep stops while no more than `reserve` of the window is free.
        self.allowed = (
            limit
            if priority is Priority.INTERACTIVE
            else max(1, limit - math.ceil(limit * reserve))
        )
        self.margin = min(_MAX_MARGIN, window / 10)
        self._budget: RateBudget = budget if budget is not None else MemoryRateBudget(clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._state = threading.Condition()
        self._waiting = 0  # threads in acquire()
        self._granted = 0  # grants taken for them and not yet handed out
        self._asking = False  # one thread is asking the budget (or waiting for room)
        self._fresh_until = 0.0  # grants in `_granted` are dropped after this moment
        self._handed: deque[float] = deque()  # when grants were handed out (last second)
        self._room = True  # the last ask got all it asked for: leasing ahead is allowed
        self._logger = logger or logging.getLogger("bot.sendgrid.ratelimit")
        self._own = MemoryRateBudget(clock=clock)  # while the shared budget is unreachable
        self._on_own = False

    def acquire(self) -> float:
        """Wait for a grant. Returns the seconds it took: behind this limiter's other
        threads, waiting for room in the window, and asking the budget."""
        started = self._clock()
        with self._state:
            self._waiting += 1
            while not self._fresh_grants() and self._asking:
                self._state.wait()
            if self._granted:
                return self._handed_one(started)
            self._asking = True
        try:
            while True:
                with self._state:
                    wanted = self._waiting
                    spare = self._lease_size()
                granted, delay = self._take(wanted + spare)
                self._room = granted == wanted + spare
                if granted:
                    break
                self._logger.debug(
                    "rate budget full for %s requests: waiting %.2f s", self.priority.value, delay
                )
                self._sleep(max(delay, _MIN_SLEEP))
        except BaseException:
            with self._state:
                self._waiting -= 1
                self._asking = False
                self._state.notify_all()
            raise
        with self._state:
            self._granted += granted
            self._fresh_until = self._clock() + self.margin / 2
            self._asking = False
            self._state.notify_all()
            return self._handed_one(started)

    def waiting(self) -> int:
        """How many threads are in `acquire()` now."""
        with self._state:
            return self._waiting

    def _handed_one(self, started: float) -> float:
        """Under `_state`: this thread takes one of the grants taken for the waiting."""
        self._granted -= 1
        self._waiting -= 1
        now = self._clock()
        self._handed.append(now)
        return now - started

    def _fresh_grants(self) -> bool:
        """Under `_state`: whether a grant taken earlier may still be handed out; a
        stale one (older than half the margin) is dropped, never sent late."""
        if self._granted and self._clock() >= self._fresh_until:
            self._logger.debug("dropped %d leased grant(s), unused in time", self._granted)
            self._granted = 0
        return self._granted > 0

    def _lease_size(self) -> int:
        """Under `_state`: how many spare grants the next ask may take."""
        horizon = self._clock() - _DEMAND_SECONDS
        while self._handed and self._handed[0] <= horizon:
            self._handed.popleft()
        return min(LEASE_MAX, len(self._handed)) if self._room else 0

    def _take(self, count: int) -> tuple[int, float]:
        window = self.window + self.margin
        try:
            taken = self._budget.take_many(count, limit=self.allowed, window=window)
        except StoreError as error:
            if not self._on_own:
                self._logger.warning(
                    "the shared rate budget is unreachable (%s): this process uses %d%% of it "
                    "on its own until it answers",
                    error,
                    FALLBACK_SHARE * 100,
                )
                self._on_own = True
            return self._own.take_many(
                count, limit=max(1, int(self.allowed * FALLBACK_SHARE)), window=window
            )
        if self._on_own:
            self._logger.info("the shared rate budget answers again")
            self._on_own = False
        return taken

    def pause_for(self, seconds: float) -> None:
        """Hold every caller on this budget, in every process, for `seconds`."""
        self._logger.info("SendGrid said 429: every process waits %.1f s", seconds)
        with self._state:
            self._fresh_until = 0.0  # leased grants are not used past a 429
        self._own.pause(seconds)
        try:
            self._budget.pause(seconds)
        except StoreError:
            self._logger.warning("could not share the pause: the rate budget is unreachable")


class NoLimit:
    """A limiter that never waits (for the simulator's own tests and benchmarks)."""

    def acquire(self) -> float:
        return 0.0

    def pause_for(self, seconds: float) -> None:
        return None
