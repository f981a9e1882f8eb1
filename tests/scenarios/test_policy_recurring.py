"""Issue 12, seen #2: a routine add must not silently end a monthly plan.

acme-eu has a 50,000 monthly allowance (31,200 left). On v2, `increment`,
`decrement` and `total` clear the recurring amount (reference §2.1), so such a
change first says what will happen and waits for its author's Confirm. On v3,
`PATCH …/credits/remaining` keeps the plan (the spec's example answers
`type: recurring`), so an add applies at once and the plan stays.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import wait_until
from tests.scenarios.conftest import USERS, BotFactory, BotUnderTest, wait_for_answers
from tests.scenarios.policy_helpers import (
    CANCEL,
    CONFIRM,
    click_prompt,
    prompt_click_body,
    send_all_at_once,
)

ADMIN, OPERATOR, APPROVER = USERS["admin"], USERS["operator"], USERS["approver"]


def acme(bot: BotUnderTest) -> dict:
    accounts = bot.simulator.state.snapshot()["subusers"]
    [account] = [a for a in accounts if a["username"] == "acme-eu"]
    return account


@pytest.mark.parametrize("api_version", ["v2"])
def test_v2_add_to_a_recurring_subuser_asks_first_and_sends_nothing(start_bot: BotFactory):
    bot = start_bot(CREDITS_AUTO_APPROVE_MAX="500")
    for user in (ADMIN, OPERATOR):  # an admin, and an operator's auto-approved add
        prompt = bot.command("add acme-eu 1", user=user)
        assert "Confirm: add 1 for acme-eu" in prompt.text
        assert "recurring allowance of 50,000" in prompt.text
        assert "*will not reset any more*" in prompt.text
        buttons = [b for b in prompt.message["blocks"] if b["type"] == "actions"]
        assert [e["action_id"] for e in buttons[0]["elements"]] == [CONFIRM, CANCEL]
    assert bot.simulator.state.writes() == []
    assert acme(bot)["credit"] == 50_000


@pytest.mark.parametrize("api_version", ["v2"])
def test_v2_confirm_applies_once_and_cancel_applies_nothing(start_bot: BotFactory):
    bot = start_bot()
    cancelled = click_prompt(bot, bot.command("add acme-eu 1", user=ADMIN), CANCEL, ADMIN)
    assert "Cancelled; nothing was changed." in cancelled.text
    assert cancelled.message["replace_original"] is True
    assert bot.simulator.state.writes() == []

    prompt = bot.command("add acme-eu 1", user=ADMIN)
    refused = click_prompt(bot, prompt, CONFIRM, APPROVER)  # not its author
    assert "already used, cancelled or has expired" in refused.text
    done = click_prompt(bot, prompt, CONFIRM, ADMIN)
    assert "Add done for *acme-eu*" in done.text
    again = click_prompt(bot, prompt, CONFIRM, ADMIN)
    assert "already used, cancelled or has expired" in again.text
    assert len(bot.simulator.state.writes(user="acme-eu")) == 1


@pytest.mark.parametrize("api_version", ["v2"])
def test_v2_confirm_clicked_at_once_on_two_instances_applies_once(start_bot: BotFactory):
    first = start_bot()
    second = start_bot()
    prompt = first.command("add acme-eu 1", user=ADMIN)
    bodies = [
        (
            (first if n % 2 else second).events_url,
            prompt_click_body(first, prompt.message, CONFIRM, ADMIN, f"confirm-{n}"),
        )
        for n in range(10)
    ]
    assert send_all_at_once(bodies) == [200] * 10
    answers = [str(m) for m in wait_for_answers(first.slack, 11, timeout=30)[1:]]
    assert sum("Add done for *acme-eu*" in a for a in answers) == 1
    assert sum("already used, cancelled or has expired" in a for a in answers) == 9
    assert len(first.simulator.state.writes(user="acme-eu")) == 1


@pytest.mark.parametrize("api_version", ["v2"])
def test_v2_operator_request_on_a_recurring_subuser_warns_the_approvers(start_bot: BotFactory):
    bot = start_bot()
    reply = bot.command("add acme-eu 5,000", user=OPERATOR)
    assert "Sent for approval" in reply.text
    card = json.dumps(bot.approval_posts()[-1].payload, ensure_ascii=False)
    assert "recurring allowance of 50,000" in card
    assert "will not reset any more" in card


@pytest.mark.parametrize("api_version", ["v3"])
def test_v3_add_keeps_the_monthly_plan(start_bot: BotFactory):
    bot = start_bot()
    done = bot.command("add acme-eu 1", user=ADMIN)
    assert "Add done for *acme-eu*" in done.text
    assert "31,200 credits → 31,201 credits" in done.text
    assert (acme(bot)["credit"], acme(bot)["period"]) == (50_000, "monthly")
    shown = bot.command("show acme-eu", user=USERS["viewer"]).text
    assert "of 50,000 monthly" in shown


@pytest.mark.parametrize("api_version", ["v3"])
def test_v3_set_on_a_recurring_subuser_asks_first(start_bot: BotFactory):
    bot = start_bot()
    prompt = bot.command("set acme-eu 100", user=ADMIN)
    assert "recurring allowance of 50,000 monthly" in prompt.text
    assert bot.simulator.state.writes() == []
    click_prompt(bot, prompt, CONFIRM, ADMIN)
    wait_until(lambda: bot.simulator.state.writes(user="acme-eu"))
    assert acme(bot)["credit"] == 0  # what was confirmed: a one-off balance
