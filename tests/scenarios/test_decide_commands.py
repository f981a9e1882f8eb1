"""Deciding from anywhere: `/credits approve|deny|cancel|resolve ID` and `pending`'s buttons,
as signed Slack requests against the real app (SendGrid v2 and v3)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bot.simulator import FaultRule
from tests import pg
from tests.fakes.slack_requests import block_actions_body, post_signed
from tests.helpers import wait_until
from tests.scenarios.conftest import (
    SIGNING_SECRET,
    USERS,
    BotFactory,
    BotUnderTest,
    wait_for_answers,
)

APPROVE, DENY = "approval_approve", "approval_deny"
OPERATOR, APPROVER, ADMIN, VIEWER = (
    USERS["operator"],
    USERS["approver"],
    USERS["admin"],
    USERS["viewer"],
)


def request(bot: BotUnderTest, text: str = "add globex 500") -> None:
    assert "as request" in bot.command(text, user=OPERATOR).text


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


def test_approve_by_command_executes_once_and_announces_like_the_button(bot: BotUnderTest):
    request(bot)
    reply = bot.command("approve 1", user=APPROVER)
    assert "Request #1 (add 500 for globex): approved and applied." in reply.text
    [write] = bot.simulator.state.writes()
    assert (write.task, write.user) == ("increment", "globex")
    update = wait_until(lambda: updates(bot))[0]
    assert f"*Approved and applied* by <@{APPROVER}>" in update
    assert "Your request #1" in wait_until(lambda: dms_to(bot, OPERATOR))[0]
    again = bot.command("approve #1", user=ADMIN)
    assert f"already handled by <@{APPROVER}>" in again.text
    assert len(bot.simulator.state.writes()) == 1


def test_deciding_by_command_keeps_the_rules_of_the_buttons(start_bot: BotFactory):
    bot = start_bot()
    request(bot)
    assert "needs the *approver* role" in bot.command("approve 1", OPERATOR).text
    promoted = start_bot(CREDITS_APPROVERS=f"{APPROVER},{OPERATOR}")  # same database
    assert "You cannot decide your own request" in promoted.command("approve 1", OPERATOR).text
    assert "needs the *approver* role" in bot.command("approve 1", VIEWER).text
    assert "There is no request #9" in bot.command("approve 9", APPROVER).text
    assert "is not a request number" in bot.command("approve one", APPROVER).text
    assert bot.simulator.state.writes() == []


def test_deny_by_command_keeps_the_reason_as_typed_and_tells_the_requester(bot: BotUnderTest):
    request(bot)
    reply = bot.command("deny 1 ZD-4411  customer already paid", user=APPROVER)
    assert "Request #1 (add 500 for globex): denied." in reply.text
    notice = wait_until(lambda: dms_to(bot, OPERATOR))[0]
    assert "denied" in notice
    assert "Reason: ZD-4411  customer already paid" in notice
    assert "*Denied* by" in wait_until(lambda: updates(bot))[0]
    assert bot.simulator.state.writes() == []


def test_only_the_requester_cancels_and_a_cancelled_request_cannot_be_approved(
    bot: BotUnderTest,
):
    request(bot)
    refused = bot.command("cancel 1", user=APPROVER)
    assert "Only the person who asked can cancel request #1" in refused.text
    reply = bot.command("cancel 1", user=OPERATOR)
    assert "Request #1 (add 500 for globex) is cancelled; nothing was changed." in reply.text
    cancelled = wait_until(lambda: updates(bot))[0]
    assert f"*Cancelled by the requester* (<@{OPERATOR}>); nothing was changed." in cancelled
    assert '"actions"' not in cancelled  # the buttons are gone
    late = bot.command("approve 1", user=APPROVER)
    assert "already handled" in late.text
    assert "cancelled by the requester" in late.text
    assert "No open requests" in bot.command("pending", user=VIEWER).text
    assert bot.simulator.state.writes() == []


def test_a_request_never_posted_is_decided_by_command(start_bot: BotFactory):
    bot = start_bot()
    bot.slack.state.missing_channels.add("C0APPROVE")
    assert "could not be posted" in bot.command("add globex 500", user=OPERATOR).text
    reply = bot.command("approve 1", user=APPROVER)
    assert "approved and applied" in reply.text
    assert len(bot.simulator.state.writes()) == 1


def test_resolve_records_an_unknown_outcome_after_rereading_and_leaves_pending(
    start_bot: BotFactory,
):
    bot = start_bot(SENDGRID_TIMEOUT="0.5")
    request(bot)
    bot.simulator.state.add_fault(FaultRule(kind="slow-write", arg="1500", task="increment"))
    assert "verify the balance" in bot.command("approve 1", user=APPROVER).text
    wait_until(lambda: bot.simulator.state.writes(task="increment"))
    assert "verify the balance" in bot.command("pending", user=VIEWER).text
    assert "needs the *approver* role" in bot.command("resolve 1 applied", OPERATOR).text
    assert "`maybe` is not an outcome" in bot.command("resolve 1 maybe", ADMIN).text
    reply = bot.command("resolve 1 applied", user=ADMIN)
    assert "Request #1 (add 500 for globex) is recorded as applied." in reply.text
    assert "Balance now: 1,140 credits." in reply.text
    assert "No open requests" in bot.command("pending", user=VIEWER).text
    again = bot.command("resolve 1 not-applied", user=ADMIN)
    assert "is not waiting to be resolved (approved and applied)" in again.text
    audit = bot.command("audit globex", user=VIEWER).text
    assert "resolved" in audit
    assert len(bot.simulator.state.writes(task="increment")) == 1


def test_pending_shows_buttons_that_decide(bot: BotUnderTest):
    request(bot)
    listed = bot.command("pending", user=APPROVER)
    actions = [b for b in listed.message["blocks"] if b["type"] == "actions"]
    [buttons] = actions
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [
        (APPROVE, "1"),
        (DENY, "1"),
    ]
    before = len(bot.slack.state.responses)
    body = block_actions_body(
        user_id=APPROVER,
        posted=listed.message,
        channel="D0APPROV1",
        ts="1700000000.000100",
        action_id=APPROVE,
        response_url=bot.slack.response_url("from-pending"),
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200
    answer = wait_for_answers(bot.slack, 1, after=before)[0]
    assert "approved and applied" in json.dumps(answer)
    assert len(bot.simulator.state.writes()) == 1


def test_a_command_racing_a_click_executes_once(bot: BotUnderTest):
    for n in range(1, 6):
        request(bot, f"add globex {100 + n}")
    for n in range(1, 6):
        before = len(bot.slack.state.responses)
        click = bot.click_body(APPROVE, ADMIN, post=n - 1)
        gate = threading.Barrier(2)

        def send_click(body: str = click, gate: threading.Barrier = gate) -> None:
            gate.wait()
            post_signed(bot.events_url, SIGNING_SECRET, body)

        def send_command(number: int = n, gate: threading.Barrier = gate) -> None:
            gate.wait()
            bot.send(f"approve {number}", APPROVER)

        threads = [threading.Thread(target=send_click), threading.Thread(target=send_command)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answers = wait_for_answers(bot.slack, 2, after=before)
        texts = [json.dumps(a) for a in answers]
        assert sum("approved and applied." in t and "already" not in t for t in texts) == 1
        assert sum("already handled" in t for t in texts) == 1
    assert len(bot.simulator.state.writes(task="increment")) == 5


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    if pg.server_url() is None:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL)")
    return pg.create_database()


def test_a_command_on_one_instance_racing_a_click_on_another_executes_once(
    start_bot: BotFactory, shared_database: str
):
    first = start_bot(DATABASE_URL=shared_database)
    second = start_bot(DATABASE_URL=shared_database)
    for n in range(1, 6):
        request(first, f"add globex {100 + n}")
    for n in range(1, 6):
        before = len(first.slack.state.responses)
        click = first.click_body(APPROVE, ADMIN, post=n - 1)
        gate = threading.Barrier(2)

        def send_click(body: str = click, gate: threading.Barrier = gate) -> None:
            gate.wait()
            post_signed(first.events_url, SIGNING_SECRET, body)

        def send_command(number: int = n, gate: threading.Barrier = gate) -> None:
            gate.wait()
            second.send(f"approve {number}", APPROVER)

        threads = [threading.Thread(target=send_click), threading.Thread(target=send_command)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answers = wait_for_answers(first.slack, 2, after=before)
        texts = [json.dumps(a) for a in answers]
        assert sum("approved and applied." in t and "already" not in t for t in texts) == 1
        assert sum("already handled" in t for t in texts) == 1
    assert len(first.simulator.state.writes(task="increment")) == 5
