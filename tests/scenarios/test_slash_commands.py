"""`/credits` end to end: signed HTTP requests in, response_url posts out.

The app runs on 127.0.0.1 as Slack would reach it; SendGrid is the simulator,
Slack's Web API is the fake; nothing in the project is patched.
"""

from __future__ import annotations

import logging
import time

import pytest
import requests
from slack_sdk.models.blocks import Block

from bot.simulator import FaultRule
from tests.fakes.slack_requests import post_signed, signed_headers, slash_command_body
from tests.helpers import wait_until
from tests.scenarios.conftest import (
    BOT_TOKEN,
    ONCALL_GROUP,
    ONCALL_MEMBER,
    SIGNING_SECRET,
    USERS,
    BotFactory,
    BotUnderTest,
)

COMMANDS = {
    "help": "help",
    "show": "show acme-eu",
    "overview": "overview alice@example.com",
    "add": "add acme-us 500",
    # One-off balances: on a recurring plan a v2 remove or any set first asks to confirm
    # (tests/scenarios/test_policy_recurring.py).
    "remove": "remove acme-us 100",
    "set": "set wonka 5,000",
    "recurring": "recurring soylent 6000 monthly",
    "unlimit": "unlimit hooli",
    "pending": "pending",
    "audit": "audit acme-eu",
}
# What each outcome looks like to the person who typed the command.
SEEN = {
    "help": "Credits bot",
    "show": "credits remaining",
    "overview": "Package",
    "change": "done for",
    "needs viewer": "needs the *viewer* role",
    "needs operator": "needs the *operator* role",
    "approval": "Sent for approval as request",
    "pending": "Open requests",
    "audit": "Audit trail: acme-eu",
    "overview on v3": "not available on v3",
}
READS = ("show", "overview", "pending", "audit")
CHANGES = ("add", "remove", "set", "recurring", "unlimit")


def expected(role: str, verb: str) -> str:
    if verb == "help":
        return "help"
    if verb in READS:
        return "needs viewer" if role == "none" else verb
    if role in ("none", "viewer"):
        return "needs operator"
    return "approval" if role == "operator" else "change"


TABLE = [(role, verb, expected(role, verb)) for role in USERS for verb in COMMANDS]


@pytest.mark.parametrize(("role", "verb", "outcome"), TABLE)
def test_every_subcommand_for_every_role(bot: BotUnderTest, role: str, verb: str, outcome: str):
    if outcome == "overview" and bot.api_version == "v3":
        outcome = "overview on v3"  # a v2 reseller call; v3 says so
    reply = bot.command(COMMANDS[verb], user=USERS[role])
    assert SEEN[outcome] in reply.text
    writes = bot.simulator.state.writes()
    assert len(writes) == (1 if outcome == "change" else 0)
    if outcome == "change":
        assert (
            writes[0].task
            == {
                "add": "increment",
                "remove": "decrement",
                "set": "total",
                "recurring": "recurring",
                "unlimit": "none",
            }[verb]
        )


def test_help_lists_only_what_the_caller_may_use(bot: BotUnderTest):
    viewer = bot.command("help", user=USERS["viewer"]).text
    assert "/credits show USER" in viewer
    assert "/credits add" not in viewer
    nobody = bot.command("", user=USERS["none"]).text
    assert "no role yet" in nobody
    assert USERS["none"] in nobody
    assert "/credits show" not in nobody


def test_change_reply_shows_before_and_after(bot: BotUnderTest):
    reply = bot.command("add acme-us 1,500")
    assert "Add done for *acme-us*" in reply.text
    assert "120,000 credits → 121,500 credits" in reply.text
    assert reply.message["response_type"] == "ephemeral"


def test_operator_add_within_auto_approve_limit_applies_at_once(start_bot: BotFactory):
    bot = start_bot(CREDITS_AUTO_APPROVE_MAX="1000")
    small = bot.command("add initech 1,000", user=USERS["operator"])
    assert "done for" in small.text
    assert "auto-approve limit" in small.text
    large = bot.command("add initech 1,001", user=USERS["operator"])
    assert "Sent for approval as request *#1*" in large.text
    remove = bot.command("remove initech 1", user=USERS["operator"])
    assert "Sent for approval as request *#2*" in remove.text
    assert [w.params["credits"] for w in bot.simulator.state.writes()] == ["1000"]


def test_user_group_member_gets_the_group_role_and_lookups_are_cached(bot: BotUnderTest):
    assert "done for" in bot.command("add acme-us 5", user=ONCALL_MEMBER).text
    assert "done for" in bot.command("add acme-us 5", user=ONCALL_MEMBER).text
    assert len(bot.slack.state.calls_to("usergroups.users.list")) == 1


@pytest.mark.parametrize("error", ["plan_upgrade_required", "ratelimited", "missing_scope"])
def test_group_lookup_failure_fails_closed_and_says_why(bot: BotUnderTest, error: str):
    bot.slack.state.groups[ONCALL_GROUP] = error
    reply = bot.command("add acme-us 5", user=ONCALL_MEMBER)
    assert "needs the *operator* role" in reply.text
    assert error in reply.text
    assert bot.simulator.state.writes() == []
    # Someone granted a role directly is not affected.
    assert "done for" in bot.command("add acme-us 5", user=USERS["admin"]).text


def test_unknown_subcommand_suggests_and_shows_help(bot: BotUnderTest):
    text = bot.command("shwo acme-eu").text
    assert "Did you mean `show`?" in text
    assert "/credits show USER" in text


# --- Slack's 3-second rule -------------------------------------------------------------


def test_slow_sendgrid_does_not_delay_the_ack(bot: BotUnderTest):
    bot.simulator.state.add_fault(FaultRule(kind="latency", arg="4000", task="retrieve"))
    started = time.monotonic()
    response = bot.send("show globex", USERS["viewer"], response_name="slow")
    acked = time.monotonic() - started
    assert response.status_code == 200
    assert acked < 1.0
    notice, message = bot.slack.state.wait_for_responses(2, timeout=15)
    assert time.monotonic() - started >= 4.0
    assert notice["text"] == "Looking up globex…"  # after 1 s, then replaced by the answer
    assert message["replace_original"] is True
    assert "640" in message["text"]


# --- signatures ------------------------------------------------------------------------


def _sentinel(bot: BotUnderTest) -> None:
    """A valid command after the forged ones: once its reply is in, nothing else came."""
    bot.command("show globex", user=USERS["viewer"])
    assert len(bot.slack.state.responses) == 1
    assert [c.task for c in bot.simulator.state.calls()] == ["retrieve"]


def test_forged_signature_is_401_and_nothing_happens(bot: BotUnderTest):
    body = slash_command_body(
        text="add acme-us 500", user_id=USERS["admin"], response_url=bot.slack.response_url()
    )
    forged = post_signed(bot.events_url, "not-the-signing-secret", body)
    assert forged.status_code == 401
    _sentinel(bot)


def test_stale_signature_is_401(bot: BotUnderTest):
    body = slash_command_body(
        text="add acme-us 500", user_id=USERS["admin"], response_url=bot.slack.response_url()
    )
    stale = post_signed(bot.events_url, SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
    assert stale.status_code == 401
    _sentinel(bot)


def test_body_changed_after_signing_is_401(bot: BotUnderTest):
    body = slash_command_body(
        text="show acme-eu", user_id=USERS["viewer"], response_url=bot.slack.response_url()
    )
    headers = signed_headers(SIGNING_SECRET, body)
    tampered = body.replace("show+acme-eu", "unlimit+acme-eu")
    assert tampered != body
    response = requests.post(bot.events_url, data=tampered, headers=headers, timeout=10)
    assert response.status_code == 401
    _sentinel(bot)


def test_unsigned_request_is_401(bot: BotUnderTest):
    body = slash_command_body(text="help", user_id=USERS["admin"], response_url="http://x/")
    response = requests.post(
        bot.events_url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 401
    _sentinel(bot)


# --- bad input: a clear answer, no write -------------------------------------------------

BAD_INPUT = [
    ("add acme-eu 0", "at least 1"),
    ("add acme-eu -5", "not a whole number"),
    ("add acme-eu 1.5", "not a whole number"),
    ("add acme-eu abc", "not a whole number"),
    ("add acme-eu 99999999999999999999", "more credits than SendGrid accepts"),
    ("add acme-eu 1,50", "not a whole number"),
    ("add acme-eu +5", "not a whole number"),
    ("add acme-eu 1e3", "not a whole number"),
    ("add acme-eu １２３", "not a whole number"),
    ("add", "Something is missing"),
    ("add acme-eu", "Something is missing"),
    ("show", "Something is missing"),
    ("show acme-eu globex", "Unexpected extra words"),
    ("pending now", "Unexpected extra words"),  # a change's extra words are its reason
    ("add alice&task=none 5", "not a SendGrid username"),
    ("add alice&amp;task=none 5", "not a SendGrid username"),
    ("unlimit acme-eu%26task=none", "not a SendGrid username"),
    ("add acme-eu 5\nunlimit acme-eu", "one command per message"),
    ("add " + "a" * 5000 + " 5", "too long"),
    ("show ácme", "not a SendGrid username"),
    ("show 💸", "not a SendGrid username"),
    ("show <@U0ADMIN01>", "not a Slack mention or link"),
    ("show " + "x" * 65, "longer than SendGrid allows"),
    ("recurring acme-eu 5 yearly", "not a period"),
    ("recurring acme-eu 5 daily start=tomorrow", "not a date"),
    ("recurring acme-eu 5 daily start=2026-02-30", "not a date"),
    ("recurring acme-eu 5 daily start=2026-03-01 end=2026-02-01", "end date is before"),
    ("recurring acme-eu 5 daily every=2", "not an option"),
    ("recurring acme-eu 5 daily initial=1 initial=2", "given twice"),
    ("frobnicate acme-eu", "no `frobnicate` subcommand"),
]


@pytest.mark.parametrize(("text", "seen"), BAD_INPUT)
def test_bad_input_gets_a_clear_reply_and_no_write(bot: BotUnderTest, text: str, seen: str):
    reply = bot.command(text)
    assert seen in reply.text
    assert bot.simulator.state.calls() == []


def test_slack_mailto_formatting_is_unwrapped(start_bot: BotFactory, api_version: str):
    if api_version == "v3":
        pytest.skip("reseller customers are a v2 feature")
    reseller = start_bot(SENDGRID_MODE="reseller")
    reply = reseller.command("show <mailto:alice@example.com|alice@example.com>")
    assert "*2,000* credits remaining" in reply.text
    assert reseller.simulator.state.calls()[0].user == "alice@example.com"


# --- SendGrid trouble, as the person sees it ---------------------------------------------


def test_unknown_account(bot: BotUnderTest):
    assert "no subuser or customer called `nobody`" in bot.command("show nobody").text


def test_unlimited_account_cannot_be_added_to(bot: BotUnderTest):
    reply = bot.command("add stark-industries 5")
    assert "has no credit limit" in reply.text
    assert bot.simulator.state.writes() == []


def test_wrong_sendgrid_credentials_are_explained_without_the_key(start_bot: BotFactory):
    bot = start_bot(SENDGRID_API_KEY="definitely-wrong-key")
    reply = bot.command("show acme-eu")
    assert "refused the bot's credentials" in reply.text
    assert "definitely-wrong-key" not in str(reply.message)


def test_write_timing_out_is_reported_as_unknown_and_reread(start_bot: BotFactory):
    bot = start_bot(SENDGRID_TIMEOUT="0.5")
    bot.simulator.state.add_fault(FaultRule(kind="slow-write", arg="1500", task="increment"))
    reply = bot.command("add initech 500")
    assert "may or may not have been applied" in reply.text
    assert "*1,400* credits remaining" in reply.text  # the re-read shows it did apply
    assert len(bot.simulator.state.writes(task="increment")) == 1


def test_sendgrid_down_says_nothing_changed(bot: BotUnderTest):
    bot.simulator.state.add_fault(FaultRule(kind="status", arg="503"))
    reply = bot.command("add globex 500")
    assert "nothing was changed" in reply.text
    assert bot.simulator.state.writes() == []


# --- Block Kit ---------------------------------------------------------------------------


def test_long_names_and_large_numbers_stay_within_block_kit_limits(bot: BotUnderTest):
    name = "massive-dynamic-international-holdings-transactional-mail-eu"
    reply = bot.command(f"show {name}")
    assert "12,345,678" in reply.text
    blocks = reply.message["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        Block.parse(block).validate_json()  # raises SlackObjectFormationError if over a limit
    header = blocks[0]
    assert header["type"] == "header"
    assert name in header["text"]["text"]
    assert len(header["text"]["text"]) <= 150


def test_recurring_start_date_works_on_v2_and_is_refused_on_v3(bot: BotUnderTest):
    reply = bot.command("recurring soylent 6000 monthly start=2026-12-01")
    if bot.api_version == "v2":
        assert "Recurring done for *soylent*" in reply.text
        assert bot.simulator.state.writes()[0].params["startdate"] == "2026-12-01"
    else:
        assert "v3 API has no start date" in reply.text
        assert bot.simulator.state.calls() == []


def test_every_reply_kind_is_valid_block_kit(bot: BotUnderTest):
    for text in ("help", "show acme-eu", "overview bob@example.org", "add acme-us 5", "add x 0"):
        for block in bot.command(text).message["blocks"]:
            Block.parse(block).validate_json()


# --- the HTTP app itself ------------------------------------------------------------------


def test_healthz(bot: BotUnderTest):
    response = requests.get(bot.url + "/healthz", timeout=5)
    assert (response.status_code, response.json()) == (200, {"ok": True})


def test_slack_api_url_is_honoured(bot: BotUnderTest):
    bot.command("help")
    tokens = {call.token for call in bot.slack.state.calls}
    assert tokens == {BOT_TOKEN}
    assert bot.slack.state.calls_to("auth.test")


def test_a_replayed_signed_request_runs_once(bot: BotUnderTest, caplog: pytest.LogCaptureFixture):
    """Both are acknowledged (the record is made off the ack's path); the replay's
    work finds its signature recorded and does nothing: no change, no reply."""
    caplog.set_level(logging.WARNING, logger="bot.slack")
    body = slash_command_body(
        text="add acme-us 500", user_id=USERS["admin"], response_url=bot.slack.response_url()
    )
    headers = signed_headers(SIGNING_SECRET, body)
    first = requests.post(bot.events_url, data=body, headers=headers, timeout=10)
    replay = requests.post(bot.events_url, data=body, headers=headers, timeout=10)
    assert (first.status_code, replay.status_code) == (200, 200)
    wait_until(lambda: "refused a replayed request" in caplog.text)
    bot.slack.state.wait_for_responses(1)
    assert len(bot.simulator.state.writes()) == 1
    assert len(bot.slack.state.responses) == 1


def test_a_reply_the_response_url_refuses_once_is_delivered_and_the_change_made_once(
    bot: BotUnderTest,
):
    bot.slack.state.failing_responses = 2
    reply = bot.command("add acme-us 500")
    assert "Add done for *acme-us*" in reply.text
    assert len(bot.simulator.state.writes()) == 1


def test_replies_to_response_urls_share_one_connection(bot: BotUnderTest):
    """Each reply used to open (and for https, handshake) a connection of its own;
    replies posted one after another now reuse one kept-alive connection."""
    for _ in range(3):
        assert "credits" in bot.command("help").text.lower()
    assert len(bot.slack.state.response_connections) == 3
    assert len(set(bot.slack.state.response_connections)) == 1
