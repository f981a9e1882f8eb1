from datetime import UTC, datetime, timedelta

from bot.domain.alerts import Snapshot
from bot.domain.history import runs_out_at, slots, sparkline, top_ups

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def hours_ago(hours: float, remaining: int | None, *, unlimited: bool = False) -> Snapshot:
    return Snapshot("acme-eu", NOW - timedelta(hours=hours), remaining, unlimited)


def test_a_sparkline_is_28_characters_for_a_week_scaled_from_zero():
    points = [hours_ago(168 - 6 * i - 1, 2_800 - 100 * i) for i in range(28)]
    line = sparkline(points, now=NOW)
    assert line is not None
    assert len(line) == 28
    assert line[0] == "█"
    assert line[-1] == "▁"  # 100 of 2,800: nearly empty
    assert list(line) == sorted(line, reverse=True)  # falling all week


def test_a_sparkline_shows_gaps_and_a_top_up():
    points = [hours_ago(100, 500), hours_ago(50, 100), hours_ago(1, 1_000)]
    line = sparkline(points, now=NOW)
    assert line is not None
    assert line.count("·") == 25
    assert line[-1] == "█"


def test_no_sparkline_without_a_limited_balance_in_the_week():
    assert sparkline([], now=NOW) is None
    assert sparkline([hours_ago(5, None, unlimited=True)], now=NOW) is None
    assert sparkline([hours_ago(24 * 8, 10)], now=NOW) is None


def test_slots_keep_the_last_value_of_each_slot():
    points = [hours_ago(3, 30), hours_ago(2, 20), hours_ago(1, 10)]
    assert slots(points, start=NOW - timedelta(hours=4), end=NOW, count=2) == [30, 10]
    assert slots(points, start=NOW, end=NOW, count=2) == []


def test_top_ups_are_rises_between_limited_points():
    points = [
        hours_ago(5, 100),
        hours_ago(4, 50),
        hours_ago(3, 5_050),  # a top-up
        hours_ago(2, None, unlimited=True),
        hours_ago(1, 9_000),  # after unlimited: a new baseline, not a top-up
        hours_ago(0, 9_500),
    ]
    assert top_ups(points) == [points[2], points[5]]


def test_runs_out_at_is_now_plus_the_hours_left():
    assert runs_out_at(NOW, None) is None
    assert runs_out_at(NOW, 6.5) == NOW + timedelta(hours=6, minutes=30)
    assert runs_out_at(NOW, -1) == NOW
