"""show, low and history as Block Kit: valid for slack-sdk's models, within Slack's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_sdk.models.blocks import Block

from bot.commands.replies import BalanceReply, HistoryReply, LowAccount, LowReply
from bot.domain.alerts import AlertLevel, Snapshot
from bot.domain.credits import Balance
from bot.transports.slack.blocks import render_message

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MAX_BLOCKS = 50


def valid(message: dict) -> dict:
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert 0 < len(message["text"]) <= 3000
    for block in message["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    return message


def test_a_long_low_list_stays_within_block_kit_limits_and_names_accounts_in_its_text():
    accounts = tuple(
        LowAccount(
            user=f"customer-{i:02d}-" + "x" * 50,
            level=AlertLevel.EXHAUSTED if i % 3 == 0 else AlertLevel.LOW,
            remaining=0 if i % 3 == 0 else 10 * i,
            reason="runs out in ~1 h at the current pace <&>",
            hours_left=0.5 * i,
            seen_at=NOW,
        )
        for i in range(40)
    )
    message = valid(render_message(LowReply(accounts=accounts, now=NOW, as_of=NOW, more=1_234)))
    assert message["text"].startswith("14 exhausted, 1260 low: customer-00-")
    text = str(message["blocks"])
    assert "…and 1,234 more." in text
    assert "&lt;&amp;&gt;" in text  # a reason is escaped


def test_no_low_account_is_said_plainly():
    message = valid(render_message(LowReply(accounts=(), now=NOW, as_of=None)))
    assert message["text"] == "No account is low or exhausted."
    assert "No sweep has recorded a balance yet." in str(message["blocks"])


def test_show_with_status_runway_and_trend_is_valid():
    reply = BalanceReply(
        "acme-eu",
        Balance(False, 900, allowance=50_000),
        hours_left=6.2,
        level=AlertLevel.LOW,
        reason="at or below 1,000",
        runs_out_at=NOW + timedelta(hours=6.2),
        trend="█▇▆▅▄▃▂▁" * 3 + "····",
    )
    message = valid(render_message(reply))
    text = str(message["blocks"])
    assert ":large_orange_circle: *low* — at or below 1,000" in text
    assert "Runs out in ~6 h at the recent pace, <!date^" in text
    assert "{date_short_pretty} {time}|Mon 2026-11-23 18:12 UTC>" in text
    assert message["text"] == "acme-eu: 900 credits (low)"


def test_a_history_that_could_not_be_posted_is_valid_text():
    points = tuple(
        Snapshot("acme-eu", NOW - timedelta(days=d), 1_000 * d, False) for d in range(30, 0, -1)
    )
    reply = HistoryReply(
        "acme-eu", points, now=NOW, hours_left=50, trend="▇" * 30, chart_error="not_in_channel"
    )
    message = valid(render_message(reply))
    text = str(message["blocks"])
    assert "could not be posted here (not_in_channel)" in text
    assert "Runs out in ~2 days" in text


def test_a_count_from_only_the_lowest_balances_says_it_is_a_floor():
    reply = LowReply(accounts=(), now=NOW, as_of=NOW, more=0)
    accounts = (LowAccount("a", AlertLevel.LOW, 5, "at or below 1,000", None, NOW),)
    capped = LowReply(accounts=accounts, now=NOW, as_of=NOW, more=1_960, looked_at=2_000)
    assert "…and at least 1,960 more (only the 2,000 lowest balances are looked at)." in str(
        render_message(capped)["blocks"]
    )
    assert "at least" not in str(render_message(reply)["blocks"])
