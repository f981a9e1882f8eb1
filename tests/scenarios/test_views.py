"""Where accounts are heading, typed as in Slack: show's status, runway and trend;
`/credits low`; `/credits history`; "did you mean"; help per backend."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from tests.scenarios.conftest import USERS, BotUnderTest
from tests.scenarios.test_alert_actions import Sweeps

VIEWER = USERS["viewer"]


@pytest.fixture
def sweeps(bot: BotUnderTest, tmp_path: Path):
    sweeps = Sweeps(bot, tmp_path / "bot.sqlite3")
    # The bot reads snapshots against the wall clock: sweep in the last few hours.
    sweeps.now = datetime.now(UTC) - timedelta(hours=4)
    yield sweeps
    sweeps.store.close()


def burn_acme_us(bot: BotUnderTest, sweeps: Sweeps) -> None:
    """acme-us (one-off balance) falls 10,000 → 8,000 → 2,000 over two hourly sweeps."""
    for remaining in (10_000, 8_000, 2_000):
        bot.simulator.state.subusers["acme-us"].credit_remain = remaining
        sweeps.run(hours=1)


def assert_valid_blocks(message: dict) -> None:
    for block in message.get("blocks", []):
        Block.parse(block).validate_json()  # type: ignore[union-attr]


def test_show_gives_the_digests_status_the_runway_in_the_readers_time_and_a_trend(bot, sweeps):
    burn_acme_us(bot, sweeps)
    shown = bot.command("show acme-us", user=VIEWER)
    text = shown.text
    assert ":large_orange_circle: *low* — runs out in ~1 h at the current pace" in text
    when = re.search(
        r"Runs out in ~1 h at the recent pace, <!date\^([0-9]+)\^"
        r"\{date_short_pretty\} \{time\}\|[A-Z][a-z]{2} 20[0-9-]+ [0-9:]+ UTC>",
        text,
    )
    assert when, text
    trend = re.search(r"Last 7 days: `([▁▂▃▄▅▆▇█·]{28})`", text)
    assert trend, text
    assert trend.group(1).rstrip("·")[-1] == "▂"  # 2,000 of the week's 10,000
    assert "acme-us: 2,000 credits (low)" in shown.message["text"]  # notifications
    assert_valid_blocks(shown.message)


def test_show_of_a_healthy_account_is_ok_and_of_an_empty_one_exhausted(bot, sweeps):
    sweeps.run()
    assert ":large_green_circle: *ok*" in bot.command("show acme-eu", user=VIEWER).text
    bot.simulator.state.subusers["initech"].credit_remain = 0
    assert (
        ":red_circle: *exhausted* — no credits left"
        in bot.command("show initech", user=VIEWER).text
    )
