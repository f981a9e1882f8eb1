"""The low-credit sweep: read every watched balance, decide, announce only what changed.

Balances are read with bounded concurrency (each read still takes a token from
the client's rate limiter) and processed in chunks, so memory stays flat however
many subusers there are. A read that fails is reported in the digest, never
fatal. Announcing goes through the `AlertPoster` port (Slack in production).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Protocol

from bot.domain.alerts import (
    AlertLevel,
    AlertState,
    Assessment,
    Change,
    Thresholds,
    announcement,
    assess,
    forecast,
    observe,
)
from bot.domain.credits import Balance
from bot.domain.ports import AlertStore, CreditsBackend
from bot.errors import NotifyError, SendGridError
from bot.observability.metrics import NO_METRICS, Metrics

CHUNK = 500
SNAPSHOT_DAYS = 7


@dataclass(frozen=True, slots=True)
class Announcement:
    change: Change
    assessment: Assessment


@dataclass
class SweepReport:
    """What one sweep found and said."""

    started: datetime
    accounts: int = 0
    read: int = 0
    skipped_inactive: int = 0
    announcements: list[Announcement] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    level_counts: dict[AlertLevel, int] = field(default_factory=dict)
    # Hours until zero of the low and exhausted accounts whose pace is known.
    runway: dict[str, float] = field(default_factory=dict)
    # States that record an announcement: saved only once the digest is posted,
    # so an alert Slack did not take is announced again next sweep.
    announced_states: list[AlertState] = field(default_factory=list)
    posted: bool = False

    @property
    def alerts(self) -> list[Announcement]:
        """Newly low/exhausted and reminders, exhausted first."""
        worrying = [a for a in self.announcements if a.change is not Change.RECOVERED]
        return sorted(worrying, key=lambda a: (-a.assessment.level.rank, a.assessment.user))

    @property
    def recoveries(self) -> list[Announcement]:
        return [a for a in self.announcements if a.change is Change.RECOVERED]


class AlertPoster(Protocol):
    def post_digest(self, report: SweepReport) -> None: ...


class SweepService:
    """Runs sweeps. `horizon` is the early-warning window: the time to the next sweep
    plus a margin; a subuser that will run out within it is warned even above its
    threshold."""

    def __init__(
        self,
        *,
        backend: CreditsBackend,
        store: AlertStore,
        poster: AlertPoster | None,
        thresholds: Thresholds,
        watch: Sequence[str] = (),
        concurrency: int = 8,
        horizon: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        logger: logging.Logger | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._backend = backend
        self._store = store
        self._poster = poster
        self._thresholds = thresholds
        self._watch = tuple(watch)
        self._concurrency = concurrency
        self._horizon_hours = horizon.total_seconds() / 3600
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.sweep")

    def sweep(self) -> SweepReport:
        """One sweep: read, decide, store, announce. Idempotent: a second sweep right
        after announces nothing new."""
        now = self._clock()
        started = time.monotonic()
        report = SweepReport(started=now)
        overrides = self._store.thresholds()
        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="sweep") as pool:
            # A two-stage pipeline: the next chunk is being read while this one is
            # decided and stored; never more than two chunks in memory.
            in_flight: list[Future[tuple[str, Balance | SendGridError]]] = []
            for chunk in _chunks(self._accounts(report), CHUNK):
                reading = [pool.submit(self._read, user) for user in chunk]
                if in_flight:
                    self._decide([f.result() for f in in_flight], overrides, now, report)
                in_flight = reading
            if in_flight:
                self._decide([f.result() for f in in_flight], overrides, now, report)
        self._store.prune_snapshots(before=now - timedelta(days=SNAPSHOT_DAYS))
        self._logger.info(
            "sweep: %d accounts, %d read, %d failed, %d alerts, %d recoveries",
            report.accounts,
            report.read,
            len(report.failures),
            len(report.alerts),
            len(report.recoveries),
        )
        self._metrics.sweep_finished(
            seconds=time.monotonic() - started,
            accounts_by_level={
                level.value: report.level_counts.get(level, 0) for level in AlertLevel
            },
            runway_hours=report.runway,
        )
        if self._poster is not None and (report.announcements or report.failures):
            try:
                self._poster.post_digest(report)
            except NotifyError as error:
                self._logger.error("digest not posted (%s); alerts will repeat", error.reason)
                return report
            report.posted = True
            self._store.save_states(report.announced_states)
        return report

    def _accounts(self, report: SweepReport) -> Iterator[str]:
        if self._watch:
            for user in self._watch:
                report.accounts += 1
                yield user
            return
        for account in self._backend.list_accounts():
            report.accounts += 1
            if not account.active:
                report.skipped_inactive += 1
                continue
            yield account.username

    def _read(self, user: str) -> tuple[str, Balance | SendGridError]:
        try:
            return user, self._backend.get_balance(user)
        except SendGridError as error:
            return user, error

    def _decide(
        self,
        results: list[tuple[str, Balance | SendGridError]],
        overrides: dict[str, int],
        now: datetime,
        report: SweepReport,
    ) -> None:
        balances = [(u, b) for u, b in results if isinstance(b, Balance)]
        for user, error in results:
            if isinstance(error, SendGridError):
                report.failures.append((user, type(error).__name__))
        states = self._store.states([u for u, _ in balances])
        updated: list[AlertState] = []
        for user, balance in balances:
            report.read += 1
            state = states.get(user, AlertState(user))
            usage = state.usage
            if balance.remaining is not None and not balance.unlimited:
                usage = observe(state.usage, balance.remaining, now)
            assessment = assess(
                user,
                balance,
                self._thresholds,
                override=overrides.get(user),
                outlook=forecast(usage),
                horizon_hours=self._horizon_hours,
            )
            report.level_counts[assessment.level] = report.level_counts.get(assessment.level, 0) + 1
            if assessment.level is AlertLevel.EXHAUSTED:
                report.runway[user] = 0.0
            elif assessment.level is AlertLevel.LOW and assessment.forecast is not None:
                report.runway[user] = assessment.forecast.hours_left
            change, new_state = announcement(state, assessment.level, now=now)
            new_state = AlertState(
                user,
                announced=new_state.announced,
                snoozed_until=new_state.snoozed_until,
                usage=usage,
            )
            if change is not None:
                report.announcements.append(Announcement(change, assessment))
                report.announced_states.append(new_state)
                # Until the digest is posted, remember the usage but not the announcement.
                new_state = AlertState(
                    user, announced=state.announced, snoozed_until=state.snoozed_until, usage=usage
                )
            if new_state != state:
                updated.append(new_state)
        self._store.save_states(updated)
        self._store.add_snapshots(balances, at=now)


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(islice(items, size)):
        yield chunk


def forecast_for(state: AlertState | None) -> float | None:
    """Hours left for `/credits show`, from the stored usage; None if unknown."""
    outlook = forecast(state.usage if state else None)
    return outlook.hours_left if outlook else None


# The sweep refreshes usage every CREDITS_ALERT_SCHEDULE (15 minutes by default): a
# forecast a minute old is as good as a fresh one, and `show` need not ask for it.
FORECAST_TTL = timedelta(seconds=60)
FORECAST_USERS = 1024


class ForecastCache:
    """`forecast_for` each subuser, read from the alert store at most once per `ttl`.

    Bounded to `max_users` entries (the oldest go first). A store failure is not
    cached: it raises (StoreError), and the next `show` asks again.
    """

    def __init__(
        self,
        alerts: AlertStore,
        *,
        clock: Callable[[], datetime],
        ttl: timedelta = FORECAST_TTL,
        max_users: int = FORECAST_USERS,
    ) -> None:
        self._alerts = alerts
        self._clock = clock
        self._ttl = ttl
        self._max_users = max_users
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[datetime, float | None]] = OrderedDict()

    def hours_left(self, user: str) -> float | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(user)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        hours = forecast_for(self._alerts.states([user]).get(user))
        with self._lock:
            self._entries[user] = (now, hours)
            self._entries.move_to_end(user)
            while len(self._entries) > self._max_users:
                self._entries.popitem(last=False)
        return hours
