"""Approvals end to end: requests posted, buttons clicked as Slack sends them, audit kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.simulator import DEMO_API_KEY, FaultRule
from tests.fakes.slack_requests import post_signed
from tests.helpers import wait_until
from tests.scenarios.conftest import (
    APPROVAL_CHANNEL,
    BOT_TOKEN,
    SIGNING_SECRET,
    USERS,
    BotFactory,
    BotUnderTest,
)

APPROVE, DENY = "approval_approve", "approval_deny"
OPERATOR, APPROVER, ADMIN, VIEWER = (
    USERS["operator"],
    USERS["approver"],
    USERS["admin"],
    USERS["viewer"],
)


def request(bot: BotUnderTest, text: str = "add globex 500") -> None:
    reply = bot.command(text, user=OPERATOR)
    assert "Sent for approval as request" in reply.text


def updates(bot: BotUnderTest) -> list[str]:
    return [
        json.dumps(c.payload, ensure_ascii=False) for c in bot.slack.state.calls_to("chat.update")
    ]


def dms_to(bot: BotUnderTest, user: str) -> list[str]:
    return [
        c.payload["text"]
        for c in bot.slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == user
    ]


def test_request_is_posted_with_balance_and_buttons(bot: BotUnderTest):
    reply = bot.command("add globex 5,000", user=OPERATOR)
    assert f"Sent for approval as request *#1* in <#{APPROVAL_CHANNEL}>" in reply.text
    assert "640 credits now → 5,640 credits if approved" in reply.text
    [post] = bot.approval_posts()
    text = json.dumps(post.payload, ensure_ascii=False)
    assert f"<@{OPERATOR}> asks to *add 5,000* for *globex*" in text
    actions = next(b for b in post.payload["blocks"] if b["type"] == "actions")
    approve, deny = actions["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (APPROVE, "1", "primary")
    assert approve["confirm"]["title"]["text"] == "Approve #1?"
    assert (deny["action_id"], deny["style"]) == (DENY, "danger")
    assert bot.simulator.state.writes() == []
    assert "#1* add 5,000 for globex" in bot.command("pending", user=VIEWER).text


def test_approve_executes_once_edits_the_message_and_tells_the_requester(bot: BotUnderTest):
    request(bot)
    clicked = bot.click(APPROVE, APPROVER)
    assert "Request #1 (add 500 for globex): approved and applied." in clicked.text
    assert clicked.message["response_type"] == "ephemeral"
    assert clicked.message["replace_original"] is False
    [write] = bot.simulator.state.writes()
    assert (write.task, write.user, write.params["credits"]) == ("increment", "globex", "500")
    wait_until(lambda: updates(bot))
    [update] = updates(bot)
    assert f"*Approved and applied* by <@{APPROVER}>" in update
    assert "640 credits → 1,140 credits" in update
    assert '"actions"' not in update  # the buttons are gone
    notice = wait_until(lambda: dms_to(bot, OPERATOR))
    assert "Your request #1 (add 500 for globex): approved and applied." in notice[0]
    assert "Balance now: 1,140 credits" in notice[0]
    assert "No open requests" in bot.command("pending", user=VIEWER).text


def test_second_approve_is_refused_as_already_handled(bot: BotUnderTest):
    request(bot)
    bot.click(APPROVE, APPROVER)
    again = bot.click(APPROVE, ADMIN)
    assert f"Request #1 was already handled by <@{APPROVER}>: approved and applied." in again.text
    assert len(bot.simulator.state.writes()) == 1


def test_non_approver_clicks_are_refused_and_change_nothing(bot: BotUnderTest):
    request(bot)
    for user in (VIEWER, USERS["none"]):
        refused = bot.click(APPROVE, user)
        assert "Only approvers and admins can decide requests" in refused.text
    deny = bot.click(DENY, VIEWER)
    assert "Only approvers and admins can decide requests" in deny.text
    assert bot.slack.state.calls_to("views.open") == []
    assert bot.simulator.state.writes() == []
    assert updates(bot) == []
    assert "waiting for approval" in bot.command("pending", user=VIEWER).text


def test_requester_cannot_approve_their_own_request(start_bot: BotFactory):
    bot = start_bot()
    request(bot)
    # The operator is later made an approver (a second instance on the same database).
    promoted = start_bot(CREDITS_APPROVERS=f"{APPROVER},{OPERATOR}")
    refused = promoted.click(APPROVE, OPERATOR)
    assert "You cannot decide your own request" in refused.text
    assert promoted.simulator.state.writes() == []


def test_deny_asks_for_a_reason_and_records_it(bot: BotUnderTest):
    request(bot)
    response = post_signed(bot.events_url, SIGNING_SECRET, bot.click_body(DENY, APPROVER))
    assert response.status_code == 200
    [opened] = wait_until(lambda: bot.slack.state.calls_to("views.open"))
    view = opened.payload["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("approval_deny_reason", "1")
    submitted = bot.submit_deny(APPROVER, "1", "Customer is past due <b>")
    assert submitted.status_code == 200
    assert submitted.text == ""  # a plain ack closes the dialog
    wait_until(lambda: updates(bot))
    [update] = updates(bot)
    assert f"*Denied* by <@{APPROVER}>" in update
    assert "Reason: Customer is past due &lt;b&gt;" in update
    notice = wait_until(lambda: dms_to(bot, OPERATOR))
    assert "denied" in notice[0]
    assert bot.simulator.state.writes() == []


def test_deny_dialog_shows_refusals_inside_the_dialog(bot: BotUnderTest):
    request(bot)
    refused = bot.submit_deny(VIEWER, "1", "no")
    body = refused.json()
    assert body["response_action"] == "errors"
    assert "Only approvers and admins" in body["errors"]["reason"]
    assert "waiting for approval" in bot.command("pending", user=VIEWER).text


def test_approve_after_deny_is_refused(bot: BotUnderTest):
    request(bot)
    assert bot.submit_deny(APPROVER, "1", None).status_code == 200
    wait_until(lambda: updates(bot))
    refused = bot.click(APPROVE, ADMIN)
    assert f"Request #1 was already handled by <@{APPROVER}>: denied." in refused.text
    assert bot.simulator.state.writes() == []


def test_expired_request_cannot_be_approved(start_bot: BotFactory):
    bot = start_bot(CREDITS_APPROVAL_TTL="1s")
    request(bot)
    wait_until(lambda: "No open requests" in bot.command("pending", user=VIEWER).text, timeout=5)
    refused = bot.click(APPROVE, APPROVER)
    assert "Request #1 has expired; nothing was changed" in refused.text
    assert bot.simulator.state.writes() == []
    wait_until(lambda: updates(bot))
    assert "*Expired*" in updates(bot)[0]


@pytest.mark.parametrize(
    ("value", "seen"),
    [
        ("999", "There is no request #999"),
        ("abc", "not carry a valid request number"),
        ("-1", "not carry a valid request number"),
        ("1 OR 1=1", "not carry a valid request number"),
        ("U0ADMIN01", "not carry a valid request number"),  # another user's id as the value
        ("2", "There is no request #2"),  # another (here: missing) request's id
        ("", "not carry a valid request number"),
        ("99999999999", "not carry a valid request number"),
    ],
)
def test_tampered_button_values_are_refused(bot: BotUnderTest, value: str, seen: str):
    request(bot)
    refused = bot.click(APPROVE, APPROVER, value=value)
    assert seen in refused.text
    assert bot.simulator.state.writes() == []


def test_unknown_outcome_says_verify_and_is_not_retried(start_bot: BotFactory):
    bot = start_bot(SENDGRID_TIMEOUT="0.5")
    request(bot)
    bot.simulator.state.add_fault(FaultRule(kind="slow-write", arg="1500", task="increment"))
    clicked = bot.click(APPROVE, APPROVER)
    assert "SendGrid did not confirm it — verify the balance" in clicked.text
    wait_until(lambda: updates(bot))
    update = updates(bot)[0]
    assert "verify the balance" in update
    assert "640 credits → 1,140 credits" in update  # the re-read balance is shown
    assert len(wait_until(lambda: bot.simulator.state.writes(task="increment"))) == 1
    pending = bot.command("pending", user=VIEWER).text
    assert "#1* add 500 for globex" in pending
    assert "verify the balance" in pending


def test_approval_channel_missing_keeps_the_request_and_says_so(bot: BotUnderTest):
    bot.slack.state.missing_channels.add(APPROVAL_CHANNEL)
    reply = bot.command("add globex 500", user=OPERATOR)
    assert "Recorded as request *#1*, but it could not be posted" in reply.text
    assert "channel_not_found" in reply.text
    assert "#1* add 500 for globex" in bot.command("pending", user=VIEWER).text


def test_direct_change_of_an_approver_applies_at_once_and_is_audited(bot: BotUnderTest):
    reply = bot.command("set wonka 2,000", user=APPROVER)  # a one-off balance: no confirm
    assert "Set done for *wonka*" in reply.text
    assert bot.approval_posts() == []
    audit = bot.command("audit wonka", user=VIEWER).text
    assert f"<@{APPROVER}> *changed* *wonka* set 2,000 — applied" in audit
    assert "75,000 credits → 2,000 credits" in audit


def test_audit_records_everything_newest_first(bot: BotUnderTest):
    request(bot)
    bot.click(APPROVE, VIEWER)  # refused
    bot.click(APPROVE, APPROVER)
    bot.command("add globex 1", user=ADMIN)
    lines = [line for line in bot.command("audit", user=VIEWER).text.splitlines() if "<@" in line]
    actions = [line.split("*")[1] for line in lines]
    assert actions == ["changed", "applied", "approved", "was refused", "asked for"]
    assert "#1" in lines[1]
    assert "640 credits → 1,140 credits" in lines[1]


def test_no_secret_is_stored_in_the_database(bot: BotUnderTest, tmp_path: Path):
    request(bot)
    bot.click(APPROVE, APPROVER)
    bot.command("add globex 5", user=ADMIN)
    bot.command("add nobody 5", user=ADMIN)
    database = (tmp_path / "bot.sqlite3").read_bytes()
    assert b"globex" in database  # the scan does look at real content
    for secret in (DEMO_API_KEY, SIGNING_SECRET, BOT_TOKEN):
        assert secret.encode() not in database


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
        (500, {"ok": False, "error": "internal_error"}, {}),
    ],
)
def test_slack_throttling_or_failing_once_is_retried(
    bot: BotUnderTest, status: int, body: dict, headers: dict
):
    bot.slack.state.scripted["chat.postMessage"] = [(status, body, headers)]
    reply = bot.command("add globex 500", user=OPERATOR)
    assert f"Sent for approval as request *#1* in <#{APPROVAL_CHANNEL}>" in reply.text
    posts = bot.slack.state.calls_to("chat.postMessage")
    assert [c.result.get("ok") for c in posts[:2]] == [False, True]


def test_slack_refusing_the_token_keeps_the_request_and_says_so(bot: BotUnderTest):
    bot.slack.state.scripted["chat.postMessage"] = [
        (200, {"ok": False, "error": "invalid_auth"}, {}) for _ in range(3)
    ]
    reply = bot.command("add globex 500", user=OPERATOR)
    assert "Recorded as request *#1*, but it could not be posted for approval (invalid_auth)" in (
        reply.text
    )
    assert "#1* add 500 for globex" in bot.command("pending", user=VIEWER).text
    assert bot.simulator.state.writes() == []
