"""Issue 12: above CREDITS_TWO_APPROVALS_ABOVE a request needs two distinct approvers,
neither the requester; the card shows 1/2 and who; the second approval executes once."""

from __future__ import annotations

import json

from tests.helpers import wait_until
from tests.scenarios.conftest import (
    ONCALL_MEMBER,
    USERS,
    BotFactory,
    BotUnderTest,
    wait_for_answers,
)
from tests.scenarios.policy_helpers import send_all_at_once

APPROVE = "approval_approve"
OPERATOR, APPROVER, ADMIN, VIEWER = (
    USERS["operator"],
    USERS["approver"],
    USERS["admin"],
    USERS["viewer"],
)


def two_approval_bot(start_bot: BotFactory, **env: str) -> BotUnderTest:
    bot = start_bot(CREDITS_TWO_APPROVALS_ABOVE="1000", **env)
    assert "Sent for approval" in bot.command("add initech 5,000", user=OPERATOR).text
    return bot


def updates(bot: BotUnderTest) -> list[str]:
    return [
        json.dumps(c.payload, ensure_ascii=False) for c in bot.slack.state.calls_to("chat.update")
    ]


def test_the_card_says_two_approvals_are_needed(start_bot: BotFactory):
    bot = two_approval_bot(start_bot)
    card = json.dumps(bot.approval_posts()[-1].payload, ensure_ascii=False)
    assert "Approvals: 0/2 — none yet" in card


def test_first_approval_is_recorded_and_shown_and_nothing_is_sent(start_bot: BotFactory):
    bot = two_approval_bot(start_bot)
    first = bot.click(APPROVE, APPROVER)
    assert "your approval is recorded (1/2)" in first.text
    assert bot.simulator.state.writes() == []
    [update] = wait_until(lambda: updates(bot))
    assert f"Approvals: 1/2 — <@{APPROVER}>" in update
    assert '"actions"' in update  # still open for the second approver


def test_the_same_approver_twice_is_refused(start_bot: BotFactory):
    bot = two_approval_bot(start_bot)
    bot.click(APPROVE, APPROVER)
    again = bot.click(APPROVE, APPROVER)
    assert "You already approved this request" in again.text
    assert bot.simulator.state.writes() == []
    assert "waiting for approval" in bot.command("pending", user=VIEWER).text


def test_the_requester_cannot_be_the_second_approver(start_bot: BotFactory):
    bot = two_approval_bot(start_bot)
    bot.click(APPROVE, APPROVER)
    promoted = start_bot(
        CREDITS_TWO_APPROVALS_ABOVE="1000", CREDITS_APPROVERS=f"{APPROVER},{OPERATOR}"
    )
    refused = promoted.click(APPROVE, OPERATOR)
    assert "You cannot decide your own request" in refused.text
    assert bot.simulator.state.writes() == []


def test_a_second_distinct_approver_executes_it_once(start_bot: BotFactory):
    bot = two_approval_bot(start_bot)
    bot.click(APPROVE, APPROVER)
    done = bot.click(APPROVE, ONCALL_MEMBER)
    assert "approved and applied" in done.text
    [write] = bot.simulator.state.writes()
    assert (write.user, write.params["credits"]) == ("initech", "5000")
    final = wait_until(lambda: [u for u in updates(bot) if "Approved and applied" in u])
    assert f"<@{APPROVER}> and <@{ONCALL_MEMBER}>" in final[0]
    late = bot.click(APPROVE, ADMIN)
    assert "already handled" in late.text
    assert len(bot.simulator.state.writes()) == 1


def test_below_the_threshold_one_approval_is_enough(start_bot: BotFactory):
    bot = start_bot(CREDITS_TWO_APPROVALS_ABOVE="1000")
    bot.command("add initech 1,000", user=OPERATOR)
    assert "approved and applied" in bot.click(APPROVE, APPROVER).text


def test_many_approvers_at_once_make_one_write_with_two_distinct_approvers(
    start_bot: BotFactory,
):
    bot = two_approval_bot(start_bot)
    other = start_bot(CREDITS_TWO_APPROVALS_ABOVE="1000")
    approvers = [APPROVER, ONCALL_MEMBER, ADMIN, APPROVER, ONCALL_MEMBER, ADMIN]
    bodies = [
        (
            (bot if n % 2 else other).events_url,
            bot.click_body(APPROVE, approver, response_name=f"at-once-{n}"),
        )
        for n, approver in enumerate(approvers)
    ]
    assert send_all_at_once(bodies) == [200] * len(bodies)
    answers = [str(m) for m in wait_for_answers(bot.slack, 1 + len(bodies), timeout=30)]
    assert len(bot.simulator.state.writes()) == 1
    assert sum("approved and applied." in a and "already" not in a for a in answers) == 1
    assert sum("recorded (1/2)" in a for a in answers) == 1
    audit = bot.command("audit initech", user=VIEWER).text
    approved = [line for line in audit.splitlines() if "*approved*" in line]
    assert len({line.split("<@")[1].split(">")[0] for line in approved}) == 2
