"""Where a balance has been and where it is heading, from the sweeps' snapshots.

Pure: points in, values out (a text sparkline, top-ups, the moment credits run
out). The chart and the words are drawn by the transports. No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.domain.alerts import Snapshot

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
SPARK_GAP = "·"  # no limited balance seen in that slot
TREND_DAYS = 7
TREND_SLOTS_PER_DAY = 4  # one character per 6 h: 28 characters for a week
HISTORY_DAYS = 30


def limited(snapshot: Snapshot) -> bool:
    """A balance with a limit (not unlimited, and a number seen)."""
    return not snapshot.unlimited and snapshot.remaining is not None


def slots(
    points: Sequence[Snapshot], *, start: datetime, end: datetime, count: int
) -> list[int | None]:
    """The last limited balance seen in each of `count` equal slots from `start` to
    `end` (None where nothing was seen). `points` are oldest first."""
    if count <= 0 or end <= start:
        return []
    width = (end - start) / count
    out: list[int | None] = [None] * count
    for point in points:
        if not limited(point) or point.at < start or point.at > end:
            continue
        index = min(count - 1, int((point.at - start) / width))
        out[index] = point.remaining
    return out


def sparkline(
    points: Sequence[Snapshot],
    *,
    now: datetime,
    days: int = TREND_DAYS,
    per_day: int = TREND_SLOTS_PER_DAY,
) -> str | None:
    """The last `days` of balances as `▇▇▆▅▃▂▁█` (one character per slot, scaled from
    zero to the highest balance seen, so a low bar means nearly empty); None when no
    limited balance was seen in that time."""
    start = now - timedelta(days=days)
    values = slots(points, start=start, end=now, count=days * per_day)
    if all(v is None for v in values):
        return None
    # Scaled to the highest balance of the week, not of the slots' last values, so
    # a drop within one slot still shows.
    top = max(p.remaining or 0 for p in points if limited(p) and start <= p.at <= now)
    top = max(top, 1)
    last = len(SPARK_LEVELS) - 1
    return "".join(
        SPARK_GAP if v is None else SPARK_LEVELS[round(last * max(0, v) / top)] for v in values
    )


def top_ups(points: Sequence[Snapshot]) -> list[Snapshot]:
    """The points where the balance rose since the point before (a top-up or a reset)."""
    out: list[Snapshot] = []
    previous: Snapshot | None = None
    for point in points:
        if not limited(point):
            previous = None
            continue
        assert point.remaining is not None
        if previous is not None and (previous.remaining or 0) < point.remaining:
            out.append(point)
        previous = point
    return out


def runs_out_at(now: datetime, hours_left: float | None) -> datetime | None:
    """When credits reach zero at the recent pace, or None when the pace is unknown."""
    if hours_left is None:
        return None
    return now + timedelta(hours=max(0.0, hours_left))
