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
from datetime import UTC, date, datetime, time, timedelta

from bot.commands import messages  # wording only: a leaf module that imports nothing
from bot.domain.credits import Balance, Period


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
    """The last balance seen, the recent burn rate (credits per hour) and how much the
    rate varies (`spread`, a mean absolute deviation in credits per hour), if known."""

    remaining: int
    at: datetime
    per_hour: float | None = None
    spread: float | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One balance as a sweep read it (`remaining` is None when it has no limit)."""

    user: str
    at: datetime
    remaining: int | None
    unlimited: bool


@dataclass(frozen=True, slots=True)
class Forecast:
    """Credits used per hour recently, and the hours left at that pace."""

    per_hour: float
    hours_left: float


# How much the newest interval counts in the burn rate (exponentially weighted).
RATE_WEIGHT = 0.5


def observe(previous: Usage | None, remaining: int, now: datetime) -> Usage:
    """Fold one balance read into the burn rate and its spread. O(1) per read.

    Only decreases count as usage: a top-up or a recurring reset restarts the
    baseline and keeps the rate learned so far (the customer is likely to go on
    sending at the same pace; the credits added are not usage). Reads closer
    together than `MIN_INTERVAL` that saw no change keep the older baseline, so a
    `show` right after a scheduled read does not dilute the rate.
    """
    if previous is None:
        return Usage(remaining, now)
    hours = (now - previous.at).total_seconds() / 3600
    if hours <= 0:
        return previous
    if remaining > previous.remaining:
        return Usage(remaining, now, previous.per_hour, previous.spread)
    if remaining == previous.remaining and hours < MIN_INTERVAL.total_seconds() / 3600:
        return previous
    rate = (previous.remaining - remaining) / hours
    if previous.per_hour is None:
        return Usage(remaining, now, rate, rate / 2)
    per_hour = RATE_WEIGHT * rate + (1 - RATE_WEIGHT) * previous.per_hour
    deviation = abs(rate - previous.per_hour)
    spread = (
        deviation
        if previous.spread is None
        else RATE_WEIGHT * deviation + (1 - RATE_WEIGHT) * previous.spread
    )
    return Usage(remaining, now, per_hour, spread)


# Reads of an unchanged balance closer together than this do not restart the baseline.
MIN_INTERVAL = timedelta(minutes=1)
# The "high-percentile" burn rate is the mean plus this many spreads (for a normal
# variation, mean + 2.5 MAD is about the 95th percentile).
SPREAD_FACTOR = 2.5


def high_rate(usage: Usage) -> float | None:
    """A burn rate the subuser will rarely exceed: per_hour + SPREAD_FACTOR × spread."""
    if usage.per_hour is None:
        return None
    return usage.per_hour + SPREAD_FACTOR * (usage.spread or 0.0)


def low_line(
    balance: Balance, thresholds: Thresholds, *, override: int | None = None
) -> int | None:
    """The balance at or below which `assess` calls a subuser low (None: no limit)."""
    if balance.unlimited or balance.remaining is None:
        return None
    line = override if override is not None else thresholds.below
    if balance.allowance and thresholds.percent:
        line = max(line, int(balance.allowance * thresholds.percent / 100))
    return line


def next_read(
    usage: Usage | None,
    *,
    line: int | None,
    level: AlertLevel,
    horizon_hours: float,
    unknown_rate: timedelta,
    min_interval: timedelta,
    max_staleness: timedelta,
) -> timedelta:
    """How long after `usage.at` to read this subuser again: the earliest moment it
    could be announced (cross `line`, or come within `horizon_hours` of zero) at its
    high-percentile burn rate. Accounts without a limit, not spending or far from
    their line wait up to `max_staleness`; accounts already low wait until they could
    run out; an unknown rate is learned with a read after `unknown_rate`."""
    if usage is None or line is None:
        return max_staleness
    rate = high_rate(usage)
    if level is AlertLevel.EXHAUSTED:
        wait = max_staleness  # only a top-up changes it; `show`/`add` see those at once
    elif rate is None:
        wait = unknown_rate
    elif rate <= 0:
        wait = max_staleness
    elif level is AlertLevel.LOW:
        wait = timedelta(hours=max(0, usage.remaining) / rate)
    else:
        # Either trigger: the threshold line, or the forecast's early warning, which
        # fires when remaining ≤ per_hour × horizon (bounded here at the high rate).
        to_line = (usage.remaining - line) / rate
        to_horizon = usage.remaining / rate - horizon_hours
        wait = timedelta(hours=max(0.0, min(to_line, to_horizon)))
    return min(max(wait, min_interval), max_staleness)


# A read this long after a foreseen reset sees the new balance.
RESET_READ_DELAY = timedelta(minutes=1)


def next_reset(balance: Balance, now: datetime) -> datetime | None:
    """When SendGrid next resets this recurring allowance, as far as the balance tells:
    every `period` after `last_reset`, at 00:00 UTC (SendGrid gives only the date; the
    time of day is an assumption). v3 reports the period but not the date, so only a
    daily reset (next midnight) is known there; v2 reports the date but not the period,
    so none is. None when it cannot be told."""
    if balance.allowance is None or balance.period is None:
        return None
    if balance.last_reset is None:
        if balance.period is not Period.DAILY:
            return None
        return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    day = balance.last_reset
    while (at := datetime.combine(day, time(), UTC)) <= now:
        day = _after(day, balance.period)
    return at


def _after(day: date, period: Period) -> date:
    if period is Period.DAILY:
        return day + timedelta(days=1)
    if period is Period.WEEKLY:
        return day + timedelta(days=7)
    year, month = day.year + (day.month == 12), day.month % 12 + 1
    for last in (31, 30, 29, 28):  # the same day next month, or that month's last
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def usage_from(snapshots: list[Snapshot]) -> Usage | None:
    """The burn rate `observe` would have learnt from these snapshots (oldest first):
    for accounts whose alert state has no rate yet."""
    usage: Usage | None = None
    for snapshot in snapshots:
        if snapshot.remaining is not None and not snapshot.unlimited:
            usage = observe(usage, snapshot.remaining, snapshot.at)
    return usage


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
    """What was last announced for a subuser, any snooze, and its usage so far; the
    level last assessed (None before the first read) and when to read it next."""

    user: str
    announced: AlertLevel = AlertLevel.OK
    snoozed_until: datetime | None = None
    usage: Usage | None = None
    level: AlertLevel | None = None
    due: datetime | None = None

    def runway_hours(self) -> float | None:
        """Hours until zero at the recent pace, from the stored usage (None: unknown)."""
        outlook = forecast(self.usage)
        return outlook.hours_left if outlook else None


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


def attention(states: list[AlertState], *, limit: int) -> list[AlertState]:
    """The states worth showing a person, most urgent first: exhausted, then low by
    shortest runway (unknown last), then name."""
    worrying = [s for s in states if s.level in (AlertLevel.LOW, AlertLevel.EXHAUSTED)]

    def urgency(state: AlertState) -> tuple[int, float, str]:
        runway = state.runway_hours()
        rank = state.level.rank if state.level else 0
        return (-rank, runway if runway is not None else float("inf"), state.user)

    return sorted(worrying, key=urgency)[:limit]
