"""Shared state on the digest: Add credits and Snooze edit the digest line, a second Add
on an account just topped up says so first, and direct changes and decisions go to
CREDITS_LOG_CHANNEL. Clicks and dialogs are signed Slack requests (v2 and v3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.slack_requests import block_actions_body, post_signed, view_submission_body
from tests.helpers import wait_until
from tests.scenarios.conftest import SIGNING_SECRET, USERS, BotFactory, BotUnderTest
from tests.scenarios.test_alert_actions import ALERTS, Sweeps

ADMIN, APPROVER, OPERATOR, VIEWER = (
    USERS["admin"],
    USERS["approver"],
    USERS["operator"],
    USERS["viewer"],
)
DIGEST_TS = "1700000000.000001"
LOG = "C0LOGCHAN"


@pytest.fixture
def sweeps(bot: BotUnderTest, tmp_path: Path):
    sweeps = Sweeps(bot, tmp_path / "bot.sqlite3")
    yield sweeps
    sweeps.store.close()


def digest_edits(bot: BotUnderTest) -> list[dict]:
    return [
        c.payload
        for c in bot.slack.state.calls_to("chat.update")
        if c.payload.get("channel") == ALERTS and c.payload.get("ts") == DIGEST_TS
    ]


def line_of(message: dict, subuser: str) -> str:
    blocks = message["blocks"]
    index = next(i for i, b in enumerate(blocks) if b.get("block_id") == f"alert-{subuser}")
    return blocks[index - 1]["text"]["text"]


def click_add(bot: BotUnderTest, sweeps: Sweeps, user: str, subuser: str = "initech") -> dict:
    before = len(bot.slack.state.calls_to("views.open"))
    body = block_actions_body(
        user_id=user,
        posted=sweeps.digest(),
        channel=ALERTS,
        ts=DIGEST_TS,
        action_id="alert_add_credits",
        response_url=bot.slack.response_url(f"add-{user}"),
        block_id=f"alert-{subuser}",
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200
    opened = wait_until(lambda: bot.slack.state.calls_to("views.open")[before:])
    return opened[0].payload["view"]


def submit_add(bot: BotUnderTest, view: dict, user: str, amount: str) -> None:
    values = {"amount": {"amount_input": {"type": "plain_text_input", "value": amount}}}
    body = view_submission_body(
        user_id=user,
        callback_id="alert_add_credits_amount",
        private_metadata=view["private_metadata"],
        values=values,
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200


def test_add_and_snooze_edit_the_digest_line_and_build_on_each_other(bot, sweeps):
    sweeps.run()
    original = line_of(sweeps.digest(), "initech")
    view = click_add(bot, sweeps, ADMIN)
    assert view["private_metadata"] == f"initech {ALERTS} {DIGEST_TS}"
    submit_add(bot, view, ADMIN, "5,000")
    [added] = wait_until(lambda: digest_edits(bot))
    assert line_of(added, "initech") == (
        f"{original}\n:white_check_mark: +5,000 by <@{ADMIN}>, now 5,900 credits"
    )
    # Snooze on another line of the same digest keeps the Add note (it edits the kept copy,
    # not the stale message its click carried).
    sweeps.click("alert_snooze", "tyrell", OPERATOR)
    edits = wait_until(lambda: digest_edits(bot)[1:])
    snoozed = edits[0]
    assert f":zzz: snoozed by <@{OPERATOR}> until 20" in line_of(snoozed, "tyrell")
    assert "+5,000 by" in line_of(snoozed, "initech")


def test_an_operators_add_shows_as_requested_on_the_line(bot, sweeps):
    sweeps.run()
    submit_add(bot, click_add(bot, sweeps, OPERATOR), OPERATOR, "500")
    [edit] = wait_until(lambda: digest_edits(bot))
    assert f":hourglass: +500 requested by <@{OPERATOR}> (request #1)" in line_of(edit, "initech")


def test_a_second_add_says_first_that_someone_just_topped_it_up(bot, sweeps):
    sweeps.run()
    first = click_add(bot, sweeps, ADMIN)
    assert "added" not in json.dumps(first["blocks"])
    submit_add(bot, first, ADMIN, "5,000")
    wait_until(lambda: digest_edits(bot))
    second = click_add(bot, sweeps, APPROVER)
    warning = second["blocks"][0]["text"]["text"]
    assert warning.startswith(f":warning: <@{ADMIN}> added 5,000 0 min ago (now 5,900 credits).")
    assert "Add more only if that was not enough." in warning


def test_direct_changes_and_decisions_go_to_the_log_channel(start_bot: BotFactory):
    bot = start_bot(CREDITS_LOG_CHANNEL=LOG)
    bot.command("add initech 100", user=ADMIN)
    bot.command("add initech 500", user=OPERATOR)
    bot.command("approve 1", user=APPROVER)
    bot.command("add initech 700", user=OPERATOR)
    bot.command("deny 2 not this month", user=APPROVER)
    logged = wait_until(
        lambda: (
            texts
            if len(
                texts := [
                    c.payload["text"]
                    for c in bot.slack.state.calls_to("chat.postMessage")
                    if c.payload.get("channel") == LOG
                ]
            )
            >= 3
            else None
        )
    )
    assert logged == [
        f"<@{ADMIN}> *add 100 for initech*: 900 credits → 1,000 credits",
        f"Request *#1* (add 500 for initech, from <@{OPERATOR}>): approved and applied by "
        f"<@{APPROVER}> · 1,000 credits → 1,500 credits",
        f"Request *#2* (add 700 for initech, from <@{OPERATOR}>): denied by <@{APPROVER}> · "
        "Reason: not this month",
    ]
