"""Continuous, risk-ordered balance reads: the clock's low-credit watch (issue 15).

Instead of reading every subuser in turn on a schedule, the watch keeps per
subuser its last balance, burn rate and the rate's spread (`AlertState`), and
reads each one again at the earliest moment it could be announced at a
high-percentile burn rate (`bot.domain.alerts.next_read`). Reads are spent
earliest-deadline-first, as fast as the rate limiter gives grants (sweep
priority: interactive commands keep SENDGRID_INTERACTIVE_RESERVE of the window),
so the watch uses whatever the commands leave. Accounts without a limit, idle or
far from their threshold are read at least every CREDITS_MAX_STALENESS.

Two more sources feed the same decision, without spending reads:
- `observe()`: a balance some command read anyway (`show`, `add`, `remove`, `set`);
- on v3, an activity scan (`GET /v3/subusers/stats/sums`, `ActivitySource`): a
  subuser that sent since the last scan has its estimated balance lowered by what
  it sent, and is read at once if that brings it near its line. A refused scan is
  logged once and the watch goes on forecast-only.

Alerts are posted as soon as known, batched into at most one digest message per
`digest_interval` (a new message each interval; see docs/alerts.md). The database
work of a batch of reads (states, snapshots) is one transaction.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.commands.sweep import AlertPoster, Announcement, SweepReport
from bot.domain.alerts import (
    RESET_READ_DELAY,
    AlertLevel,
    AlertState,
    Thresholds,
    announcement,
    assess,
    forecast,
    low_line,
    next_read,
    next_reset,
    observe,
)
from bot.domain.credits import Balance
from bot.domain.ports import AlertStore, CreditsBackend
from bot.errors import BotError, NotifyError, SendGridError

MAX_STALENESS = timedelta(hours=6)
UNKNOWN_RATE = timedelta(minutes=20)
MIN_INTERVAL = timedelta(minutes=1)
DIGEST_INTERVAL = timedelta(seconds=30)
STATS_INTERVAL = timedelta(seconds=30)
STATS_RETRY = timedelta(hours=1)
BATCH = 64
LIST_INTERVAL = timedelta(hours=1)


class ActivitySource(Protocol):
    """Who sent how much today (v3's subuser stats); absent on v2."""

    def activity(self, day: date) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class WatchSettings:
    horizon: timedelta = timedelta(hours=1, minutes=15)
    max_staleness: timedelta = MAX_STALENESS
    unknown_rate: timedelta = UNKNOWN_RATE
    min_interval: timedelta = MIN_INTERVAL
    digest_interval: timedelta = DIGEST_INTERVAL
    stats_interval: timedelta = STATS_INTERVAL
    batch: int = BATCH
    concurrency: int = 8
    # Read the earliest-due subusers ahead of time whenever the budget has room, so
    # the watch uses what interactive commands leave, not just what is due.
    read_ahead: bool = True


class AlertWatch:
    """Reads balances in order of risk and announces changes of level as they are seen.

    Drive it with `step()` (reads everything due now, then returns when the next read
    is due) from the clock's job, or `run(stop)` in a thread. Thread-safe: `observe()`
    may be called from other threads (commands).
    """

    def __init__(
        self,
        *,
        backend: CreditsBackend,
        store: AlertStore,
        poster: AlertPoster | None,
        thresholds: Thresholds,
        activity: ActivitySource | None = None,
        watch: Sequence[str] = (),
        settings: WatchSettings = WatchSettings(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        logger: logging.Logger | None = None,
    ) -> None:
        self._backend = backend
        self._store = store
        self._poster = poster
        self._thresholds = thresholds
        self._activity = activity
        self._watch = tuple(watch)
        self.settings = settings
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.watch")
        self._lock = threading.RLock()
        # Held while deciding on stored states and while recording a posted digest.
        self._deciding = threading.RLock()
        self._queue: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._last_read: dict[str, datetime] = {}
        self._lines: dict[str, int] = {}  # each subuser's low line, as of its last read
        self._listed_at: datetime | None = None
        # What the activity scan saw: today's totals, and what each subuser sent since
        # its last read (its estimated balance is the last one read minus this).
        self._stats_day: date | None = None
        self._stats_totals: dict[str, int] = {}
        self._sent_since_read: dict[str, int] = {}
        self._next_scan: datetime | None = None
        self._scan_refused = False
        self._pending: list[Announcement] = []
        self._pending_states: dict[str, AlertState] = {}
        self._last_post: datetime | None = None
        self.reads = 0
        self.scans = 0
        self.urgent = 0  # reads brought forward by the activity scan
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.concurrency), thread_name_prefix="watch"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # --- scheduling ------------------------------------------------------------------

    def due_at(self, user: str) -> datetime | None:
        with self._lock:
            return self._due.get(user)

    def _schedule(self, user: str, at: datetime) -> None:
        with self._lock:
            self._due[user] = at
            heapq.heappush(self._queue, (at, user))

    def _list(self, now: datetime) -> None:
        """(Re)load the subusers to watch and their stored schedule; new ones are due now."""
        if self._watch:
            accounts = {user: True for user in self._watch}
        else:
            accounts = {a.username: a.active for a in self._backend.list_accounts()}
        stored = self._store.states(list(accounts))
        with self._lock:
            for user, active in accounts.items():
                if user in self._due:
                    continue
                state = stored.get(user)
                if state is not None and state.due is not None:
                    self._schedule(user, state.due)
                else:  # new: read now, or within the staleness bound if disabled
                    self._schedule(user, now if active else now + self.settings.max_staleness)
            self._listed_at = now

    def next_due(self) -> datetime | None:
        """When `step()` next has something to do (a read, a scan or a digest)."""
        with self._lock:
            while self._queue and self._due.get(self._queue[0][1]) != self._queue[0][0]:
                heapq.heappop(self._queue)
            times = [self._queue[0][0]] if self._queue else []
        if self._next_scan is not None and self._activity is not None:
            times.append(self._next_scan)
        if self._pending and self._last_post is not None:
            times.append(self._last_post + self.settings.digest_interval)
        return min(times) if times else None

    def _pop_due(self, now: datetime, count: int, *, ahead: bool = False) -> list[str]:
        """Up to `count` subusers due by `now`, earliest first; with `ahead`, those due
        next even if not yet (within `max_staleness`), skipping any read less than
        `min_interval` ago (a fast burner already read every `min_interval`)."""
        chosen: list[str] = []
        kept: list[tuple[datetime, str]] = []
        recent = now - self.settings.min_interval
        with self._lock:
            looked = 0
            while self._queue and len(chosen) < count and looked < 8 * count:
                at, user = self._queue[0]
                if self._due.get(user) != at:
                    heapq.heappop(self._queue)
                    continue
                if at > now and not (ahead and at - now < self.settings.max_staleness):
                    break
                heapq.heappop(self._queue)
                looked += 1
                if ahead and at > now and self._last_read.get(user, recent) > recent:
                    kept.append((at, user))
                    continue
                del self._due[user]
                chosen.append(user)
            for entry in kept:
                heapq.heappush(self._queue, entry)
        return chosen

    # --- the loop --------------------------------------------------------------------

    def step(self, *, budget: timedelta = timedelta(seconds=50)) -> int:
        """Read everything due now (earliest deadline first), scan activity when it is
        time, post what is pending; stop after `budget` of wall time on the injected
        clock. Returns the number of balances read."""
        started = self._clock()
        if self._listed_at is None or started - self._listed_at >= LIST_INTERVAL:
            self._list(started)
        read = 0
        while True:
            now = self._clock()
            self._scan_if_due(now)
            users = self._pop_due(now, self.settings.batch)
            if not users and self.settings.read_ahead:
                users = self._pop_due(now, self.settings.batch, ahead=True)
            if not users:
                break
            done = self._read_batch(users)
            read += done
            if not done:
                break  # only subusers read a moment ago: nothing to do until one is due
            self._post_if_due(self._clock())
            if self._clock() - started >= budget:
                break
        self._post_if_due(self._clock())
        return read

    def run(self, stop: threading.Event, *, leading: Callable[[], bool] = lambda: True) -> None:
        """Step until `stop` is set, sleeping until the next due moment (at most 5 s, so
        leadership and new accounts are noticed)."""
        while not stop.is_set():
            if leading():
                try:
                    self.step()
                except BotError:
                    self._logger.exception("the low-credit watch failed a step; will retry")
            upcoming = self.next_due()
            wait = 5.0
            if upcoming is not None:
                wait = min(wait, max(0.05, (upcoming - self._clock()).total_seconds()))
            stop.wait(wait)

    # --- reads and decisions ---------------------------------------------------------

    def _read_batch(self, users: list[str]) -> int:
        stored = self._store.states(users)
        now = self._clock()
        wanted = []
        for user in users:
            state = stored.get(user)
            usage = state.usage if state else None
            # Read a moment ago (by a command, maybe in another process): not again.
            if (
                usage is not None
                and state is not None
                and state.due is not None
                and (now - usage.at < self.settings.min_interval)
            ):
                self._schedule(user, max(state.due, usage.at + self.settings.min_interval))
                with self._lock:
                    self._last_read[user] = usage.at
            else:
                wanted.append(user)
        results = list(self._pool.map(self._read_one, wanted))
        balances = []
        for user, outcome, at in results:
            if isinstance(outcome, Balance):
                balances.append((user, outcome, at))
            else:
                self._logger.warning("balance of %s not read (%s)", user, type(outcome).__name__)
                self._schedule(user, at + self.settings.min_interval * 5)
        with self._deciding:
            # Again, after the reads: a digest posted meanwhile recorded announcements.
            self._decide(balances, self._store.states([u for u, _, _ in balances]))
        self.reads += len(wanted)
        return len(wanted)

    def _read_one(self, user: str) -> tuple[str, Balance | SendGridError, datetime]:
        try:
            balance: Balance | SendGridError = self._backend.get_balance(user)
        except SendGridError as error:
            balance = error
        return user, balance, self._clock()

    def observe(self, reads: Iterable[tuple[str, Balance]]) -> None:
        """Balances a command read anyway: decide on them now (an alert or a recovery
        with no extra SendGrid call), store them and post what changed. A subuser read
        several times (a burst of `show`s) is decided on its latest balance."""
        now = self._clock()
        latest = dict(reads)  # the last read of each subuser wins
        balances = [(user, balance, now) for user, balance in latest.items()]
        if not balances:
            return
        with self._deciding:
            self._decide(balances, self._store.states([u for u, _, _ in balances]))
        self._post_if_due(now)

    def _decide(
        self,
        balances: list[tuple[str, Balance, datetime]],
        stored: dict[str, AlertState],
    ) -> None:
        if not balances:
            return
        overrides = self._store.thresholds()
        horizon_hours = self.settings.horizon.total_seconds() / 3600
        updated: list[AlertState] = []
        for user, balance, at in balances:
            state = stored.get(user, AlertState(user))
            usage = state.usage
            if balance.remaining is not None and not balance.unlimited:
                usage = observe(state.usage, balance.remaining, at)
            assessment = assess(
                user,
                balance,
                self._thresholds,
                override=overrides.get(user),
                outlook=forecast(usage),
                horizon_hours=horizon_hours,
            )
            line = low_line(balance, self._thresholds, override=overrides.get(user))
            if line is not None:
                with self._lock:
                    self._lines[user] = line
            wait = next_read(
                usage,
                line=line,
                level=assessment.level,
                horizon_hours=horizon_hours,
                unknown_rate=self.settings.unknown_rate,
                min_interval=self.settings.min_interval,
                max_staleness=self.settings.max_staleness,
            )
            due = (usage.at if usage else at) + wait
            # A reset to an allowance at or below the line is a crossing no burn rate or
            # stats scan foresees (nothing is sent): read just after the plan's next one.
            reset = (
                next_reset(balance, at)
                if assessment.level is AlertLevel.OK
                and line is not None
                and balance.allowance is not None
                and balance.allowance <= line
                else None
            )
            if reset is not None:
                due = min(due, reset + RESET_READ_DELAY)
            with self._lock:
                self._sent_since_read.pop(user, None)
                self._last_read[user] = at
                pending = self._pending_states.get(user)
            # An announcement waiting for the digest counts as made (no repeat).
            base = pending or state
            change, announced = announcement(base, assessment.level, now=at)
            new_state = replace(
                state,
                usage=usage,
                level=assessment.level,
                due=due,
            )
            if change is not None:
                with self._lock:
                    self._pending.append(Announcement(change, assessment))
                    self._pending_states[user] = replace(new_state, announced=announced.announced)
            updated.append(new_state)
            self._schedule(user, due)
        self._store.save_reads(updated, balances)

    # --- the activity scan (v3) --------------------------------------------------------

    def _scan_if_due(self, now: datetime) -> None:
        if self._activity is None:
            return
        if self._next_scan is not None and now < self._next_scan:
            return
        day = now.date()
        try:
            totals = self._activity.activity(day)
        except SendGridError as error:
            if not self._scan_refused:
                self._logger.warning(
                    "the subuser activity scan was refused (%s): reading by forecast only",
                    type(error).__name__,
                )
                self._scan_refused = True
            self._next_scan = now + STATS_RETRY
            return
        self.scans += 1
        if self._scan_refused:
            self._logger.info("the subuser activity scan answers again")
            self._scan_refused = False
        self._next_scan = now + self.settings.stats_interval
        previous = self._stats_totals if self._stats_day == day else {}
        self._stats_day, self._stats_totals = day, totals
        sent = {u: n - previous.get(u, 0) for u, n in totals.items() if n > previous.get(u, 0)}
        if not sent:
            return
        states = self._store.states(list(sent))
        # How far ahead a subuser sending at this scan's pace must be seen: the stats'
        # own delay is unknown, so the next two scans.
        reach = 2.0
        with self._lock:
            for user, count in sent.items():
                if user not in self._due:  # being read right now, or not watched
                    continue
                since = self._sent_since_read.get(user, 0) + count
                self._sent_since_read[user] = since
                state = states.get(user)
                if state is None or state.usage is None or state.level is None:
                    continue
                if self._urgent(state, since, reach * count) and self._due[user] > now:
                    self.urgent += 1
                    self._schedule(user, now)

    def _urgent(self, state: AlertState, sent: int, coming: float) -> bool:
        """Whether a subuser that sent `sent` since its last read, and may send `coming`
        before the next scans, could change level: cross its line or the forecast's
        early warning (from ok), or run out (from low)."""
        assert state.usage is not None
        estimate = state.usage.remaining - sent - coming
        if state.level is AlertLevel.EXHAUSTED:
            return False
        if state.level is AlertLevel.LOW:
            return estimate <= 0
        hours = self.settings.horizon.total_seconds() / 3600
        early = (state.usage.per_hour or 0.0) * hours
        line = self._lines.get(state.user, self._thresholds.below)
        return estimate <= max(line, early)

    # --- posting -----------------------------------------------------------------------

    def _post_if_due(self, now: datetime) -> None:
        with self._deciding:
            self._post_pending(now)

    def _post_pending(self, now: datetime) -> None:
        with self._lock:
            if not self._pending:
                return
            if (
                self._last_post is not None
                and now - self._last_post < self.settings.digest_interval
            ):
                return
            pending, self._pending = self._pending, []
            states, self._pending_states = self._pending_states, {}
            self._last_post = now
        report = SweepReport(started=now, announcements=pending, read=self.reads)
        for item in pending:
            level = item.assessment.level
            report.level_counts[level] = report.level_counts.get(level, 0) + 1
        if self._poster is not None:
            try:
                self._poster.post_digest(report)
            except NotifyError as error:
                self._logger.error("digest not posted (%s); alerts will repeat", error.reason)
                return
        # Only the announcement is recorded here: the usage is the one just saved.
        current = self._store.states(list(states))
        self._store.save_states(
            [
                replace(
                    current.get(user, state),
                    announced=state.announced,
                    snoozed_until=state.snoozed_until,
                )
                for user, state in states.items()
            ]
        )


# Seconds between a command's balance reaching the feed and the batch it is in being
# decided: the rest of a burst's replies go out first (issue 16).
FEED_SETTLE = 0.5


class BackgroundFeed:
    """Balances commands read, handed to `observe` off the reply's path.

    A `show` must not wait for the alert decision (two reads, a write and maybe a
    digest post, serialized across every command by the watch's lock): the reply
    goes out first, and the balances of every command answered meanwhile are decided
    on together, in one batch, by one thread (started with the first balance, as the
    post-ack pool's are). The batch is taken `settle` seconds after its first balance,
    so a burst's decision comes after the burst's replies, not among them, in one
    transaction. A failure is logged; the clock's watch reads the subuser again when
    it is due."""

    def __init__(
        self,
        observe: Callable[[list[tuple[str, Balance]]], None],
        *,
        logger: logging.Logger | None = None,
        settle: float = FEED_SETTLE,
    ) -> None:
        self._observe = observe
        self._settle = settle
        self._logger = logger or logging.getLogger("bot.watch")
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Balance]] = []
        self._draining = False
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-feed")

    def __call__(self, reads: list[tuple[str, Balance]]) -> None:
        with self._lock:
            if self._closed:  # the process is stopping: the watch reads it when due
                return
            self._pending.extend(reads)
            if self._draining or not self._pending:
                return
            self._draining = True
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            time.sleep(self._settle)
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._draining = False
                    return
            try:
                self._observe(batch)
            except Exception:
                self._logger.exception("low-credit state not updated from %d reads", len(batch))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
