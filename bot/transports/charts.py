"""`/credits history USER` as a picture: a PNG of the balance over 30 days.

Drawn with Pillow's ImageDraw and its built-in default font: one wheel (about
22 MB installed with its bundled image libraries), no numpy, no font files;
matplotlib would add numpy, fonttools, kiwisolver and contourpy for one line
chart. The balance is a step line (it changes between sweeps, not
along a slope); top-ups are green triangles on the line; the forecast is a
dashed line from the last balance down to zero at the recent pace, drawn ahead
of "now" (clipped to the right edge when it runs out later than the chart shows).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from PIL import Image, ImageDraw, ImageFont

from bot.domain.alerts import Snapshot
from bot.domain.history import HISTORY_DAYS, limited, runs_out_at, top_ups

WIDTH, HEIGHT = 900, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 40
AHEAD_DAYS = 5  # room on the right for the forecast

BACKGROUND = (255, 255, 255)
GRID = (228, 230, 235)
AXIS = (120, 124, 130)
TEXT = (40, 44, 52)
LINE = (29, 155, 209)  # Slack blue
TOP_UP = (46, 182, 125)  # Slack green
FORECAST = (224, 30, 90)  # Slack red
NOW_MARK = (160, 164, 170)

Across = Callable[[datetime], float]  # a moment → pixels from the left
Up = Callable[[float], float]  # credits → pixels from the top
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@dataclass(frozen=True, slots=True)
class HistoryChart:
    """What the chart shows: one subuser's points, and the forecast from `now`."""

    user: str
    points: tuple[Snapshot, ...]
    now: datetime
    hours_left: float | None = None
    days: int = HISTORY_DAYS


def history_png(chart: HistoryChart) -> bytes:
    """The chart as PNG bytes."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    start = chart.now - timedelta(days=chart.days)
    end = chart.now + timedelta(days=AHEAD_DAYS)
    seen = [p for p in chart.points if limited(p) and p.at >= start]
    top = max((p.remaining or 0 for p in seen), default=0)
    top = _nice_ceiling(max(top, 1))

    def x(at: datetime) -> float:
        share = (at - start) / (end - start)
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - (value / top) * (HEIGHT - TOP - BOTTOM)

    _grid(draw, font, top, y)
    _days(draw, font, start, chart.days, x)
    draw.text((LEFT, 12), f"{chart.user}: credits remaining, last {chart.days} days", TEXT, font)
    now_x = x(chart.now)
    _dashed(draw, (now_x, TOP), (now_x, HEIGHT - BOTTOM), NOW_MARK)
    draw.text((now_x + 3, TOP), "now", AXIS, font)
    if not seen:
        draw.text((LEFT + 20, HEIGHT // 2), "no limited balance seen in this time", TEXT, font)
        return _png(image)
    _steps(draw, seen, x, y)
    for point in top_ups(seen):
        assert point.remaining is not None
        px, py = x(point.at), y(point.remaining)
        draw.polygon([(px, py - 9), (px - 6, py + 2), (px + 6, py + 2)], fill=TOP_UP)
    last = seen[-1]
    assert last.remaining is not None
    empty_at = runs_out_at(chart.now, chart.hours_left)
    ahead = empty_at is not None and last.remaining > 0
    if empty_at is not None and ahead:
        _forecast(
            draw,
            font,
            now=chart.now,
            remaining=last.remaining,
            empty_at=empty_at,
            end=end,
            x=x,
            y=y,
        )
    _legend(draw, font, forecast=ahead)
    return _png(image)


def _steps(draw: ImageDraw.ImageDraw, points: Sequence[Snapshot], x: Across, y: Up) -> None:
    line: list[tuple[float, float]] = []
    for point in points:
        assert point.remaining is not None
        px, py = x(point.at), y(max(0, point.remaining))
        if line:
            line.append((px, line[-1][1]))
        line.append((px, py))
    if len(line) > 1:
        draw.line(line, fill=LINE, width=2)
    else:
        px, py = line[0]
        draw.ellipse([(px - 2, py - 2), (px + 2, py + 2)], fill=LINE)


def _forecast(
    draw: ImageDraw.ImageDraw,
    font: Font,
    *,
    now: datetime,
    remaining: int,
    empty_at: datetime,
    end: datetime,
    x: Across,
    y: Up,
) -> None:
    if empty_at <= end:
        target = (x(empty_at), y(0))
    else:  # runs out beyond the chart: the line leaves through the right edge
        share = (end - now) / (empty_at - now)
        target = (x(end), y(remaining * (1 - share)))
    _dashed(draw, (x(now), y(remaining)), target, FORECAST, width=2)
    if empty_at <= end:
        label = f"empty ~{empty_at:%b %d}"
        left = min(target[0] - 20, WIDTH - RIGHT - draw.textlength(label, font))
        draw.text((left, target[1] - 30), label, FORECAST, font)


def _grid(draw: ImageDraw.ImageDraw, font: Font, top: int, y: Up) -> None:
    for i in range(5):
        value = top * i / 4
        gy = y(value)
        draw.line([(LEFT, gy), (WIDTH - RIGHT, gy)], fill=GRID)
        label = f"{value:,.0f}"
        draw.text((LEFT - 8 - draw.textlength(label, font), gy - 6), label, AXIS, font)
    draw.line([(LEFT, TOP), (LEFT, HEIGHT - BOTTOM)], fill=AXIS)
    draw.line([(LEFT, HEIGHT - BOTTOM), (WIDTH - RIGHT, HEIGHT - BOTTOM)], fill=AXIS)


def _days(draw: ImageDraw.ImageDraw, font: Font, start: datetime, days: int, x: Across) -> None:
    for day in range(0, days + 1, 5):
        at = start + timedelta(days=day)
        tx = x(at)
        draw.line([(tx, HEIGHT - BOTTOM), (tx, HEIGHT - BOTTOM + 4)], fill=AXIS)
        label = f"{at:%b %d}"
        draw.text((tx - draw.textlength(label, font) / 2, HEIGHT - BOTTOM + 8), label, AXIS, font)


def _legend(draw: ImageDraw.ImageDraw, font: Font, *, forecast: bool) -> None:
    right = WIDTH - RIGHT - 260
    draw.line([(right, 18), (right + 20, 18)], fill=LINE, width=2)
    draw.text((right + 24, 12), "balance", TEXT, font)
    draw.polygon([(right + 90, 13), (right + 84, 23), (right + 96, 23)], fill=TOP_UP)
    draw.text((right + 100, 12), "top-up", TEXT, font)
    if not forecast:
        return
    _dashed(draw, (right + 150, 18), (right + 170, 18), FORECAST, width=2)
    draw.text((right + 174, 12), "forecast", TEXT, font)


def _dashed(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    fill: tuple[int, int, int],
    *,
    width: int = 1,
    dash: float = 6.0,
) -> None:
    (x0, y0), (x1, y1) = start, end
    length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    if length == 0:
        return
    steps = int(length // dash)
    for i in range(0, steps, 2):
        a, b = i / steps, min(1.0, (i + 1) / steps)
        draw.line(
            [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
            fill=fill,
            width=width,
        )


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at or above `value`."""
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
