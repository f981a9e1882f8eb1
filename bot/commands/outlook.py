"""Where accounts are heading, from stored state: show's status and trend, `/credits
low`, `/credits history`, and "did you mean" for a subuser SendGrid does not know.

Everything here reads the database only (the sweeps' snapshots, alert state and
thresholds): no SendGrid call, so `low` and `history` answer at once however many
subusers there are. Judging a balance is the digest's own `assess`.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.commands.replies import HistoryReply, LowAccount, LowReply
from bot.commands.sweep import forecast_for
from bot.domain.alerts import (
    AlertLevel,
    Assessment,
    Forecast,
    Snapshot,
    Thresholds,
    assess,
    forecast,
)
from bot.domain.credits import Balance
from bot.domain.history import HISTORY_DAYS, TREND_DAYS, sparkline
from bot.domain.ports import AlertStore

# `low` looks at this many of the lowest balances (the store sorts them fewest first):
# an account with more credits than all of these is not low by any threshold.
LOW_CANDIDATES = 2_000
LOW_SHOWN = 40  # lines in one reply (Block Kit: 50 blocks, 3,000 characters a section)
SUGGEST_CUTOFF = 0.6
# show's stored extras (threshold overrides, a week of snapshots): read at most this
# often, in seconds, per process; at most this many subusers' weeks are kept.
OUTLOOK_TTL = 60.0
OUTLOOK_USERS = 1_000


@dataclass(frozen=True, slots=True)
class Outlook:
    """A balance judged as the digest would, and its week."""

    level: AlertLevel | None
    reason: str | None
    trend: str | None


class AccountOutlook:
    """Reads the alert store to judge balances and draw their history."""

    def __init__(
        self,
        alerts: AlertStore,
        *,
        thresholds: Thresholds | None,
        horizon_hours: float | None,
        ttl: float = OUTLOOK_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alerts = alerts
        self._thresholds = thresholds
        self._horizon_hours = horizon_hours
        # `show` is on a person's reply path: the threshold overrides and each subuser's
        # week of snapshots are read at most once per `ttl` seconds per process (the
        # balance itself, and the mark for it, are always fresh). A failed read is not
        # remembered.
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._overrides: tuple[float, dict[str, int]] | None = None
        self._weeks: OrderedDict[str, tuple[float, list[Snapshot]]] = OrderedDict()

    def _override(self, user: str) -> int | None:
        now = self._monotonic()
        with self._lock:
            cached = self._overrides
        if cached is None or now - cached[0] >= self._ttl:
            cached = (now, self._alerts.thresholds())
            with self._lock:
                self._overrides = cached
        return cached[1].get(user)

    def _week(self, user: str, *, since: datetime) -> list[Snapshot]:
        now = self._monotonic()
        with self._lock:
            entry = self._weeks.get(user)
        if entry is not None and now - entry[0] < self._ttl:
            return [s for s in entry[1] if s.at >= since]
        seen = self._alerts.snapshot_history(user, since=since)
        with self._lock:
            self._weeks[user] = (now, seen)
            self._weeks.move_to_end(user)
            while len(self._weeks) > OUTLOOK_USERS:
                self._weeks.popitem(last=False)
        return seen

    def of(
        self, user: str, balance: Balance, *, hours_left: float | None, now: datetime
    ) -> Outlook:
        """`show`'s extras for a balance just read. Raises StoreError."""
        level = reason = None
        if self._thresholds is not None:
            outlook = Forecast(per_hour=0.0, hours_left=hours_left) if hours_left else None
            assessment = assess(
                user,
                balance,
                self._thresholds,
                override=self._override(user),
                outlook=outlook,
                horizon_hours=self._horizon_hours,
            )
            level, reason = assessment.level, assessment.reason
        seen = self._week(user, since=now - timedelta(days=TREND_DAYS))
        trend = sparkline([*seen, Snapshot(user, now, balance.remaining, False)], now=now)
        return Outlook(level, reason, trend)

    def low(self, *, now: datetime) -> LowReply:
        """The low and exhausted accounts as of the last sweep, exhausted first, then
        soonest to run out. Raises StoreError."""
        thresholds = self._thresholds or Thresholds(below=0, percent=0)
        overrides = self._alerts.thresholds()
        latest = self._alerts.latest_snapshots(limit=LOW_CANDIDATES)
        limited = [s for s in latest if not s.unlimited and s.remaining is not None]
        states = self._alerts.states([s.user for s in limited])
        found: list[tuple[Assessment, Snapshot]] = []
        for snapshot in limited:
            state = states.get(snapshot.user)
            assessment = assess(
                snapshot.user,
                Balance(unlimited=False, remaining=snapshot.remaining),
                thresholds,
                override=overrides.get(snapshot.user),
                outlook=forecast(state.usage if state else None),
                horizon_hours=self._horizon_hours,
            )
            if assessment.level is not AlertLevel.OK:
                found.append((assessment, snapshot))
        found.sort(key=_urgency)
        accounts = tuple(
            LowAccount(
                user=a.user,
                level=a.level,
                remaining=s.remaining or 0,
                reason=a.reason,
                hours_left=a.forecast.hours_left if a.forecast else None,
                seen_at=s.at,
            )
            for a, s in found[:LOW_SHOWN]
        )
        newest = max((s.at for s in latest), default=None)
        return LowReply(
            accounts=accounts,
            more=max(0, len(found) - LOW_SHOWN),
            as_of=newest,
            now=now,
            looked_at=LOW_CANDIDATES if len(latest) >= LOW_CANDIDATES else None,
        )

    def history(self, user: str, *, now: datetime) -> HistoryReply:
        """30 days of `user`'s snapshots, with the pace learnt by the sweeps. Raises
        StoreError."""
        seen = tuple(self._alerts.snapshot_history(user, since=now - timedelta(days=HISTORY_DAYS)))
        hours_left = forecast_for(self._alerts.states([user]).get(user))
        return HistoryReply(
            user=user,
            snapshots=seen,
            now=now,
            hours_left=hours_left,
            trend=sparkline(seen, now=now, days=HISTORY_DAYS, per_day=1),
        )

    def close_match(self, user: str) -> str | None:
        """The known subuser whose name is closest to `user` (a typo), if any is close.
        Raises StoreError."""
        return closest(user, self._alerts.subuser_names())


def closest(user: str, names: Sequence[str]) -> str | None:
    """`acme-ue` → `acme-eu`: the known name fewest typing slips away (a swapped pair
    counts as one), then the most alike by difflib's ratio; case aside (`ACME-US`
    → `acme-us`). None when
    nothing is within two slips (one for short names) and alike enough."""
    typed = user.lower()
    allowed = 1 if len(typed) < 5 else 2
    best: tuple[int, float, str] | None = None
    for name in names:
        if name == user:
            continue
        candidate = name.lower()
        slips = typing_distance(typed, candidate, limit=allowed)
        if slips > allowed:
            continue
        ratio = difflib.SequenceMatcher(None, typed, candidate).ratio()
        if ratio < SUGGEST_CUTOFF:
            continue
        key = (slips, -ratio, name)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def typing_distance(a: str, b: str, *, limit: int) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours to turn `a` into `b`
    (optimal string alignment); anything above `limit` is reported as `limit + 1`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return min(previous[-1], limit + 1)


def _urgency(found: tuple[Assessment, Snapshot]) -> tuple[int, float, int, str]:
    """Exhausted first, then soonest to run out, then fewest credits."""
    assessment, snapshot = found
    hours = assessment.forecast.hours_left if assessment.forecast else float("inf")
    return (-assessment.level.rank, hours, snapshot.remaining or 0, assessment.user)
