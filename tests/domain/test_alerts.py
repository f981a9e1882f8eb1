"""Alert levels, announcements and the burn-rate forecast (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.alerts import (
    AlertLevel,
    AlertState,
    Change,
    Thresholds,
    announcement,
    assess,
    forecast,
    next_reset,
    observe,
)
from bot.domain.credits import Balance, Period

T0 = datetime(2026, 11, 22, tzinfo=UTC)
LIMITS = Thresholds(below=1000, percent=10)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def history(*points: tuple[float, int]):
    usage = None
    for at, remaining in points:
        usage = observe(usage, remaining, hours(at))
    return usage


def test_steady_burn_gives_the_expected_hours():
    usage = history((0, 10_000), (1, 9_000), (2, 8_000), (3, 7_000))
    outlook = forecast(usage)
    assert outlook is not None
    assert outlook.per_hour == pytest.approx(1_000)
    assert outlook.hours_left == pytest.approx(7.0)


def test_rate_follows_a_speed_up_with_weighting():
    # 1,000/h, then 3,000/h: the weighted rate is 0.5·3,000 + 0.5·1,000 = 2,000/h.
    usage = history((0, 10_000), (1, 9_000), (2, 6_000))
    outlook = forecast(usage)
    assert outlook is not None
    assert outlook.per_hour == pytest.approx(2_000)
    assert outlook.hours_left == pytest.approx(3.0)


def test_top_ups_and_resets_are_not_negative_usage():
    usage = history((0, 5_000), (1, 4_000), (2, 50_000), (3, 49_000))
    outlook = forecast(usage)
    assert outlook is not None
    assert outlook.per_hour == pytest.approx(1_000)
    assert outlook.hours_left == pytest.approx(49.0)


def test_no_forecast_without_usage():
    assert forecast(history((0, 5_000))) is None
    assert forecast(history((0, 5_000), (1, 5_000))) is None
    assert forecast(None) is None


@pytest.mark.parametrize(
    ("balance", "override", "level", "reason"),
    [
        (Balance.no_limit(), None, AlertLevel.OK, "no limit"),
        (Balance(False, 0), None, AlertLevel.EXHAUSTED, "no credits left"),
        (Balance(False, 1000), None, AlertLevel.LOW, "at or below 1,000"),
        (Balance(False, 1001), None, AlertLevel.OK, "ok"),
        (Balance(False, 4_000, allowance=50_000), None, AlertLevel.LOW, "8% of its allowance left"),
        (Balance(False, 5_000), 10_000, AlertLevel.LOW, "at or below 10,000"),
        (Balance(False, 500), 100, AlertLevel.OK, "ok"),
    ],
)
def test_levels(balance: Balance, override: int | None, level: AlertLevel, reason: str):
    assessment = assess("x", balance, LIMITS, override=override)
    assert (assessment.level, assessment.reason) == (level, reason)


def test_forecast_warns_early_only_inside_the_horizon():
    usage = history((0, 10_000), (1, 7_000))  # 3,000/h, 7,000 left: ~2.3 h
    outlook = forecast(usage)
    inside = assess("x", Balance(False, 7_000), LIMITS, outlook=outlook, horizon_hours=3)
    outside = assess("x", Balance(False, 7_000), LIMITS, outlook=outlook, horizon_hours=2)
    assert (inside.level, inside.reason) == (AlertLevel.LOW, "runs out in ~2 h at the current pace")
    assert outside.level is AlertLevel.OK


TRANSITIONS = [
    (AlertLevel.OK, AlertLevel.OK, None, AlertLevel.OK),
    (AlertLevel.OK, AlertLevel.LOW, Change.NEWLY_LOW, AlertLevel.LOW),
    (AlertLevel.OK, AlertLevel.EXHAUSTED, Change.NEWLY_EXHAUSTED, AlertLevel.EXHAUSTED),
    (AlertLevel.LOW, AlertLevel.LOW, None, AlertLevel.LOW),
    (AlertLevel.LOW, AlertLevel.EXHAUSTED, Change.NEWLY_EXHAUSTED, AlertLevel.EXHAUSTED),
    (AlertLevel.EXHAUSTED, AlertLevel.LOW, None, AlertLevel.LOW),
    (AlertLevel.EXHAUSTED, AlertLevel.OK, Change.RECOVERED, AlertLevel.OK),
    (AlertLevel.LOW, AlertLevel.OK, Change.RECOVERED, AlertLevel.OK),
]


@pytest.mark.parametrize(("announced", "level", "change", "stored"), TRANSITIONS)
def test_only_changes_are_announced(announced, level, change, stored):
    said, state = announcement(AlertState("x", announced=announced), level, now=T0)
    assert said is change
    assert state.announced is stored


def test_snooze_silences_then_reminds_once():
    state = AlertState("x", announced=AlertLevel.LOW, snoozed_until=hours(24))
    said, state = announcement(state, AlertLevel.EXHAUSTED, now=hours(12))
    assert said is None
    said, state = announcement(state, AlertLevel.EXHAUSTED, now=hours(25))
    assert said is Change.STILL_LOW
    said, state = announcement(state, AlertLevel.EXHAUSTED, now=hours(26))
    assert said is None


def test_recovery_during_snooze_is_announced_when_it_ends():
    state = AlertState("x", announced=AlertLevel.LOW, snoozed_until=hours(24))
    said, _ = announcement(state, AlertLevel.OK, now=hours(25))
    assert said is Change.RECOVERED


# --- when a recurring allowance next resets (issue 15: resets to a small allowance) -----


def test_the_next_reset_follows_the_period_from_the_last_reset():
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    monthly = Balance(
        unlimited=False,
        remaining=900,
        allowance=500,
        period=Period.MONTHLY,
        last_reset=datetime(2026, 11, 1).date(),
    )
    assert next_reset(monthly, now) == datetime(2026, 12, 1, tzinfo=UTC)
    weekly = Balance(
        unlimited=False,
        remaining=900,
        allowance=500,
        period=Period.WEEKLY,
        last_reset=datetime(2026, 11, 1).date(),
    )
    assert next_reset(weekly, now) == datetime(2026, 11, 29, tzinfo=UTC)


def test_a_daily_reset_is_next_midnight_even_without_its_date():
    now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    daily = Balance(unlimited=False, remaining=900, allowance=500, period=Period.DAILY)
    assert next_reset(daily, now) == datetime(2026, 11, 24, tzinfo=UTC)


def test_no_reset_is_foreseen_without_its_period():
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    # v2 reports the last reset but not how often; v3 the period but not the date.
    v2 = Balance(
        unlimited=False, remaining=900, allowance=500, last_reset=datetime(2026, 11, 1).date()
    )
    assert next_reset(v2, now) is None
    assert next_reset(Balance(unlimited=False, remaining=900), now) is None
