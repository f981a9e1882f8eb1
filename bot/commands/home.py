"""What the App Home and the request modal show, read from stored state only.

Nothing here calls SendGrid: the Home is built from what the sweep stored
(latest balance snapshots, alert states with their burn rate) and from the
approval requests, so opening it costs a few indexed queries, however slow
SendGrid is. The subuser type-ahead reads a name list the sweep left behind,
cached in memory for a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.commands.sweep import SNAPSHOT_DAYS, forecast_for
from bot.domain.alerts import AlertLevel, AlertState, Thresholds, forecast, usage_from
from bot.domain.approvals import ApprovalRequest, RequestStatus
from bot.domain.policy import Action, Role, RoleBook, allows
from bot.domain.ports import AlertStore, GroupDirectory, Store
from bot.errors import StoreError

ATTENTION_SHOWN = 10
REQUESTS_SHOWN = 5
PENDING_SHOWN = 10
# Candidates read for "needs attention" before ranking (the lowest balances first).
ATTENTION_READ = 200
# A subuser above its threshold whose pace empties it within this long needs attention too.
SOON_HOURS = 24.0


@dataclass(frozen=True, slots=True)
class AccountOutlook:
    """A subuser that needs attention: its level, last balance and runway (hours)."""

    user: str
    level: AlertLevel
    remaining: int
    seen_at: datetime
    hours_left: float | None


@dataclass(frozen=True, slots=True)
class HomeContent:
    """One viewer's App Home, before it is drawn."""

    user_id: str
    role: Role
    attention: tuple[AccountOutlook, ...] = ()
    pending: tuple[ApprovalRequest, ...] = ()  # for those who may decide
    mine: tuple[ApprovalRequest, ...] = ()
    store_failed: bool = False
    now: datetime | None = None

    @property
    def may_decide(self) -> bool:
        return allows(self.role, Action.DECIDE_REQUEST)

    @property
    def may_request(self) -> bool:
        return allows(self.role, Action.CHANGE_CREDITS)


class HomeService:
    """Builds each viewer's Home from the stores and remembers who looked lately."""

    def __init__(
        self,
        *,
        store: Store,
        alerts: AlertStore | None,
        roles: RoleBook,
        directory: GroupDirectory | None,
        thresholds: Thresholds,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        logger: logging.Logger | None = None,
    ) -> None:
        self._store = store
        self.alerts = alerts
        self._roles = roles
        self._directory = directory
        self._thresholds = thresholds
        self._clock = clock
        self._logger = logger or logging.getLogger("bot.home")

    def home(self, user_id: str) -> HomeContent:
        """`user_id`'s Home. A database failure gives a Home that says so, not an error."""
        role = self._roles.resolve(user_id, self._directory).role
        now = self._clock()
        try:
            attention = self.attention(now)
            pending: tuple[ApprovalRequest, ...] = ()
            if allows(role, Action.DECIDE_REQUEST):
                waiting = [
                    r
                    for r in self._store.open_requests()
                    if r.status is RequestStatus.PENDING and not r.expired_at(now)
                ]
                pending = tuple(waiting[:PENDING_SHOWN])
            mine = tuple(self._store.requests_by(user_id, limit=REQUESTS_SHOWN))
        except StoreError:
            self._logger.warning("home for %s: the database failed", user_id)
            return HomeContent(user_id, role, store_failed=True, now=now)
        return HomeContent(user_id, role, attention, pending, mine, now=now)

    def attention(self, now: datetime) -> tuple[AccountOutlook, ...]:
        """Exhausted first, then low ones soonest to run out (those with no known pace
        after them): each subuser's latest snapshot at or below its threshold, and those
        the sweep announced, or whose stored pace runs out within `SOON_HOURS`."""
        if self.alerts is None:
            return ()
        overrides = self.alerts.thresholds()
        ceiling = max([self._thresholds.below, *overrides.values()])
        candidates = self.alerts.latest_snapshots(at_or_below=ceiling, limit=ATTENTION_READ)
        worrying = [
            s
            for s in candidates
            if s.remaining is not None
            and s.remaining <= overrides.get(s.user, self._thresholds.below)
        ]
        states = self.alerts.states([s.user for s in worrying])
        seen = {s.user: (s.remaining, s.at) for s in worrying if s.remaining is not None}
        for state in self.alerts.worrying_states(within_hours=SOON_HOURS, limit=ATTENTION_READ):
            if state.user not in seen and state.usage is not None:
                seen[state.user] = (state.usage.remaining, state.usage.at)
                states[state.user] = state
        outlooks = []
        for user, (remaining, at) in seen.items():
            level = AlertLevel.EXHAUSTED if remaining <= 0 else AlertLevel.LOW
            hours = 0.0 if level is AlertLevel.EXHAUSTED else self._runway(user, states, now)
            outlooks.append(AccountOutlook(user, level, remaining, at, hours))
        outlooks.sort(
            key=lambda o: (
                -o.level.rank,
                o.hours_left is None,
                o.hours_left or 0.0,
                o.remaining,
                o.user,
            )
        )
        return tuple(outlooks[:ATTENTION_SHOWN])

    def _runway(self, user: str, states: dict[str, AlertState], now: datetime) -> float | None:
        """Hours left from the stored burn rate; failing that, from the snapshots."""
        hours = forecast_for(states.get(user))
        if hours is not None or self.alerts is None:
            return hours
        history = self.alerts.snapshot_history(user, since=now - timedelta(days=SNAPSHOT_DAYS))
        outlook = forecast(usage_from(history))
        return outlook.hours_left if outlook else None

    def saw(self, user_id: str) -> None:
        """Remember that `user_id` opened the Home (for the refresh after a sweep)."""
        try:
            self._store.saw_home(user_id, at=self._clock())
        except StoreError:
            self._logger.warning("home viewer %s not recorded: the database failed", user_id)

    def recent_viewers(self, *, within: timedelta, limit: int) -> list[str]:
        try:
            return self._store.home_viewers(since=self._clock() - within, limit=limit)
        except StoreError:
            self._logger.warning("home viewers not read: the database failed")
            return []


# --- the subuser type-ahead ---------------------------------------------------------------

MAX_OPTIONS = 100  # Slack shows at most 100 options in an external_select
NAMES_TTL = 60.0


def rank_subusers(names: Sequence[str], query: str, *, limit: int = MAX_OPTIONS) -> list[str]:
    """Names that start with `query` (case-insensitive) first, then those that contain
    it; each group in name order; at most `limit`. An empty query lists the first."""
    needle = query.strip().lower()
    if not needle:
        return list(names[:limit])
    prefix: list[str] = []
    inside: list[str] = []
    for name in names:
        folded = name.lower()
        if folded.startswith(needle):
            prefix.append(name)
            if len(prefix) >= limit:
                break
        elif needle in folded and len(inside) < limit:
            inside.append(name)
    return (prefix + inside)[:limit]


class SubuserNames:
    """The sweep's subuser list, read from the alert store at most once per `ttl`
    seconds (sorted; a failed read keeps the last list)."""

    def __init__(
        self,
        alerts: AlertStore | None,
        *,
        ttl: float = NAMES_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alerts = alerts
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._read_at: float | None = None

    def names(self) -> list[str]:
        with self._lock:
            now = self._monotonic()
            if self._alerts is not None and (
                self._read_at is None or now - self._read_at >= self._ttl
            ):
                try:
                    self._names = self._alerts.subuser_names()
                except StoreError:
                    logging.getLogger("bot.home").warning("subuser names: the database failed")
                self._read_at = now
            return self._names

    def suggest(self, query: str) -> list[str]:
        return rank_subusers(self.names(), query)
