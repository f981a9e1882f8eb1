"""Low-credit alerts: levels, what is worth announcing, and when credits will run out.

A subuser is `exhausted` at zero, `low` at or below its threshold (absolute,
or a percent of its recurring allowance, or — from the forecast — when it will
run out before the next sweep plus a margin), else `ok`. Only changes of level
are announced: a sweep that finds the same level as the last announcement says
nothing, so two sweeps in a row produce one alert. No I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from bot.commands import messages  # wording only: a leaf module that imports nothing
from bot.domain.credits import Balance


class AlertLevel(enum.StrEnum):
    OK = "ok"
    LOW = "low"
    EXHAUSTED = "exhausted"

    @property
    def rank(self) -> int:
        return {"ok": 0, "low": 1, "exhausted": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Warn at or below `below` credits, or `percent` of the recurring allowance."""

    below: int
    percent: float


@dataclass(frozen=True, slots=True)
class Usage:
    """The last balance seen and the recent burn rate (credits per hour), if known."""

    remaining: int
    at: datetime
    per_hour: float | None = None


@dataclass(frozen=True, slots=True)
class Forecast:
    """Credits used per hour recently, and the hours left at that pace."""

    per_hour: float
    hours_left: float


# How much the newest interval counts in the burn rate (exponentially weighted).
RATE_WEIGHT = 0.5


def observe(previous: Usage | None, remaining: int, now: datetime) -> Usage:
    """Fold one sweep's balance into the burn rate. O(1) per subuser and sweep.

    Only decreases count as usage: a top-up or a recurring reset restarts the
    baseline and keeps the rate learned so far.
    """
    if previous is None:
        return Usage(remaining, now)
    hours = (now - previous.at).total_seconds() / 3600
    if hours <= 0:
        return previous
    if remaining > previous.remaining:
        return Usage(remaining, now, previous.per_hour)
    rate = (previous.remaining - remaining) / hours
    if previous.per_hour is None:
        return Usage(remaining, now, rate)
    return Usage(remaining, now, RATE_WEIGHT * rate + (1 - RATE_WEIGHT) * previous.per_hour)


def forecast(usage: Usage | None) -> Forecast | None:
    """Hours until zero at the recent pace; None while nothing has been used."""
    if usage is None or not usage.per_hour or usage.per_hour <= 0:
        return None
    return Forecast(per_hour=usage.per_hour, hours_left=max(0, usage.remaining) / usage.per_hour)


@dataclass(frozen=True, slots=True)
class Assessment:
    """One subuser's level this sweep, and why."""

    user: str
    balance: Balance
    level: AlertLevel
    reason: str
    forecast: Forecast | None = None


def assess(
    user: str,
    balance: Balance,
    thresholds: Thresholds,
    *,
    override: int | None = None,
    outlook: Forecast | None = None,
    horizon_hours: float | None = None,
) -> Assessment:
    """The level of `balance`: thresholds first, then the forecast's early warning."""
    if balance.unlimited or balance.remaining is None:
        return Assessment(user, balance, AlertLevel.OK, messages.ALERT_NO_LIMIT)
    remaining = balance.remaining
    if remaining <= 0:
        return Assessment(user, balance, AlertLevel.EXHAUSTED, messages.ALERT_EXHAUSTED, outlook)
    below = override if override is not None else thresholds.below
    if remaining <= below:
        reason = messages.ALERT_BELOW.format(below=below)
        return Assessment(user, balance, AlertLevel.LOW, reason, outlook)
    percent = balance.percent_of_allowance()
    if percent is not None and thresholds.percent and percent <= thresholds.percent:
        return Assessment(
            user, balance, AlertLevel.LOW, messages.ALERT_PERCENT.format(percent=percent), outlook
        )
    if outlook is not None and horizon_hours is not None and outlook.hours_left <= horizon_hours:
        return Assessment(
            user,
            balance,
            AlertLevel.LOW,
            messages.ALERT_RUNS_OUT.format(hours=max(1, round(outlook.hours_left))),
            outlook,
        )
    return Assessment(user, balance, AlertLevel.OK, "ok", outlook)


class Change(enum.StrEnum):
    """What a sweep announces about one subuser."""

    NEWLY_LOW = "newly_low"
    NEWLY_EXHAUSTED = "newly_exhausted"
    RECOVERED = "recovered"
    STILL_LOW = "still_low"  # a reminder when a snooze ends and it has not recovered


@dataclass(frozen=True, slots=True)
class AlertState:
    """What was last announced for a subuser, any snooze, and its usage so far."""

    user: str
    announced: AlertLevel = AlertLevel.OK
    snoozed_until: datetime | None = None
    usage: Usage | None = None


def announcement(
    state: AlertState, level: AlertLevel, *, now: datetime
) -> tuple[Change | None, AlertState]:
    """What to announce for this sweep's level, and the state to store.

    Worse than announced → newly low/exhausted; back to ok → recovered; the same
    or a partial recovery (exhausted → low) → nothing. While snoozed nothing is
    announced; when the snooze ends and the subuser is still not ok, one
    reminder is.
    """
    if state.snoozed_until is not None and now < state.snoozed_until:
        return None, state
    if state.snoozed_until is not None:  # the snooze just ended
        if level is AlertLevel.OK:
            recovered = Change.RECOVERED if state.announced is not AlertLevel.OK else None
            return recovered, replace(state, announced=level, snoozed_until=None)
        return Change.STILL_LOW, replace(state, announced=level, snoozed_until=None)
    if level.rank > state.announced.rank:
        change = Change.NEWLY_EXHAUSTED if level is AlertLevel.EXHAUSTED else Change.NEWLY_LOW
        return change, replace(state, announced=level)
    if level is AlertLevel.OK and state.announced is not AlertLevel.OK:
        return Change.RECOVERED, replace(state, announced=level)
    if level.rank < state.announced.rank:  # exhausted → low: quietly note it
        return None, replace(state, announced=level)
    return None, state
