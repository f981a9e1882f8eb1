"""Where accounts are heading, typed as in Slack: show's status, runway and trend;
`/credits low`; `/credits history`; "did you mean"; help per backend."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from slack_sdk.models.blocks import Block

from bot.adapters.store.alerts import SqlAlertStore
from bot.domain.alerts import AlertState, Usage
from bot.domain.credits import Balance
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


def seed_history(sweeps: Sweeps, user: str = "acme-us", days: int = 30) -> None:
    """Thirty days of six-hourly snapshots: a steady burn, a top-up ten days ago, and a
    burn rate the sweeps learnt (so the forecast is drawn)."""
    alerts = SqlAlertStore(sweeps.store)
    now = datetime.now(UTC)
    remaining = 40_000
    for slot in range(days * 4, 0, -1):
        at = now - timedelta(hours=6 * slot)
        if slot == 40:
            remaining += 25_000
        remaining -= 300
        alerts.add_snapshots([(user, Balance(False, remaining))], at=at)
    alerts.save_states([AlertState(user, usage=Usage(remaining, now - timedelta(hours=6), 50.0))])


def test_history_uploads_a_png_chart_where_the_command_was_typed(bot, sweeps):
    seed_history(sweeps)
    reply = bot.command("history acme-us", user=VIEWER)
    assert "The chart is posted in this conversation." in reply.text
    assert re.search(r"Last 30 days, a mark a day: `[▁▂▃▄▅▆▇█·]{30}`", reply.text)
    assert "top-ups: 1" in reply.text
    assert_valid_blocks(reply.message)
    [uploaded] = bot.slack.state.files.values()
    assert uploaded.completed
    assert uploaded.channel_id == "C0SUPPORT"  # where the command was typed
    assert uploaded.filename == "acme-us-credits-30-days.png"
    assert uploaded.length == len(uploaded.data or b"")
    assert "acme-us" in (uploaded.alt_txt or "")
    image = Image.open(io.BytesIO(uploaded.data or b""))
    assert image.format == "PNG"
    steps = [c.method for c in bot.slack.state.calls if c.method.startswith("files.")]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("not_in_channel", "not_in_channel"), ("no_scope", "missing_scope")],
)
def test_history_answers_with_the_sparkline_when_the_chart_cannot_be_posted(
    bot, sweeps, scenario, reason
):
    seed_history(sweeps)
    if scenario == "not_in_channel":
        bot.slack.state.outside_channels.add("C0SUPPORT")
    else:
        bot.slack.state.scopes = tuple(s for s in bot.slack.state.scopes if s != "files:write")
    reply = bot.command("history acme-us", user=VIEWER)
    assert f"The chart could not be posted here ({reason}), so here it is as text." in reply.text
    assert re.search(r"Last 30 days, a mark a day: `[▁▂▃▄▅▆▇█·]{30}`", reply.text)
    assert "Runs out in ~" in reply.text
    assert not [f for f in bot.slack.state.files.values() if f.completed]
    assert_valid_blocks(reply.message)


def test_history_of_a_subuser_never_swept_says_so_and_uploads_nothing(bot, sweeps):
    reply = bot.command("history wonka", user=VIEWER)
    assert "No balance of wonka recorded in the last 30 days" in reply.text
    assert bot.slack.state.files == {}


def test_low_lists_low_and_exhausted_accounts_from_stored_state(bot, sweeps):
    bot.simulator.state.subusers["initech"].credit_remain = 0
    bot.simulator.state.subusers["acme-us"].credit_remain = 500
    sweeps.run()
    reads = len(bot.simulator.state.calls())
    reply = bot.command("low", user=VIEWER)
    text = reply.text
    assert ":red_circle: *initech* — 0 credits, no credits left" in text
    assert ":large_orange_circle: *acme-us* — 500 credits, at or below 1,000" in text
    assert text.index("*initech*") < text.index("*acme-us*")  # exhausted first
    assert "acme-eu" not in text.split("\n", 1)[1]  # a healthy account is not listed
    assert "As of the last sweep, <!date^" in text
    # Notifications show only the fallback text: it names the accounts.
    assert re.match(r"[0-9]+ exhausted, [0-9]+ low: ", reply.message["text"])
    assert "initech" in reply.message["text"]
    assert "acme-us" in reply.message["text"]
    assert_valid_blocks(reply.message)
    assert len(bot.simulator.state.calls()) == reads  # no SendGrid fan-out


def test_an_unknown_subuser_gets_a_close_match_from_the_swept_names(bot, sweeps):
    sweeps.run()
    reply = bot.command("show acme-ue", user=VIEWER)
    assert "SendGrid has no subuser or customer called `acme-ue`." in reply.text
    assert "Did you mean `acme-eu`?" in reply.text
    far = bot.command("show zzzzzz", user=VIEWER)
    assert "Did you mean" not in far.text


def test_help_and_usage_offer_only_what_this_sendgrid_api_has(bot):
    helped = bot.command("help", user=USERS["admin"]).text
    wrong = bot.command("recurring hooli", user=USERS["admin"]).text
    if bot.api_version == "v3":
        assert "/credits overview" not in helped
        assert "start=" not in helped
        assert "initial=" not in helped
        assert "/credits recurring USER N daily|weekly|monthly [reason]" in helped
        assert "start=" not in wrong
    else:
        assert "/credits overview USER" in helped
        assert "[start=YYYY-MM-DD] [end=YYYY-MM-DD] [initial=N]" in helped
        assert "start=YYYY-MM-DD" in wrong
    assert "/credits low" in helped
    assert "/credits history USER" in helped
