"""The history chart: a real PNG from a seeded 30-day history (a copy is kept for review)."""

from __future__ import annotations

import io
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from bot.domain.alerts import Snapshot
from bot.transports.charts import FORECAST, HEIGHT, LINE, TOP_UP, WIDTH, HistoryChart, history_png

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SAMPLE_COPY = Path("/work/notes/history-sample.png")


def seeded_history(seed: int = 13) -> list[Snapshot]:
    """30 days of hourly sweeps: a steady burn with noise, a top-up on day 12, a faster
    burn after a campaign on day 20."""
    rng = random.Random(seed)
    points, remaining = [], 42_000
    for hour in range(30 * 24, 0, -1):
        at = NOW - timedelta(hours=hour)
        day = 30 - hour / 24
        if abs(day - 12) < 1 / 48:
            remaining += 30_000
        burn = 55 if day < 20 else 140
        remaining = max(0, remaining - int(rng.uniform(0.4, 1.6) * burn))
        points.append(Snapshot("acme-eu", at, remaining, False))
    return points


def colours(png: bytes) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {colour for _, colour in image.getcolors(maxcolors=WIDTH * HEIGHT) or []}


def test_a_30_day_history_becomes_a_png_with_balance_top_ups_and_forecast():
    points = seeded_history()
    last = points[-1].remaining
    assert last is not None
    png = history_png(HistoryChart("acme-eu", tuple(points), now=NOW, hours_left=last / 140))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == (WIDTH, HEIGHT)
    assert {LINE, TOP_UP, FORECAST} <= colours(png)
    assert len(png) < 100_000  # small enough to upload from a slash command
    if SAMPLE_COPY.parent.is_dir() and os.access(SAMPLE_COPY.parent, os.W_OK):
        SAMPLE_COPY.write_bytes(png)  # for the lead to look at


def test_a_chart_without_limited_balances_says_so_and_draws_no_line():
    points = (Snapshot("hooli", NOW - timedelta(days=1), None, True),)
    png = history_png(HistoryChart("hooli", points, now=NOW))
    assert LINE not in colours(png)
    assert FORECAST not in colours(png)


def test_no_forecast_without_a_pace():
    png = history_png(HistoryChart("acme-eu", tuple(seeded_history()), now=NOW, hours_left=None))
    found = colours(png)
    assert LINE in found
    assert FORECAST not in found
