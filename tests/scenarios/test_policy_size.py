"""Issue 12, seen #3: size guards for everyone, admins included.

Defaults: CREDITS_MAX_CHANGE=1,000,000 (refused above), CREDITS_CONFIRM_ABOVE=10,000
(a Confirm step above). A removal beyond the balance is refused, not clamped.
"""

from __future__ import annotations

from tests.scenarios.conftest import USERS, BotFactory, BotUnderTest
from tests.scenarios.policy_helpers import CONFIRM, click_prompt

ADMIN, OPERATOR, VIEWER = USERS["admin"], USERS["operator"], USERS["viewer"]


def test_a_huge_add_by_an_admin_is_refused_by_the_ceiling(bot: BotUnderTest):
    reply = bot.command("add globex 2147483647", user=ADMIN)
    assert "2,147,483,647 credits is above this bot's ceiling for one change (1,000,000" in (
        reply.text
    )
    assert bot.simulator.state.writes() == []


def test_the_ceiling_holds_for_requests_too(start_bot: BotFactory):
    bot = start_bot(CREDITS_MAX_CHANGE="5000")
    reply = bot.command("add initech 5001", user=OPERATOR)
    assert "above this bot's ceiling" in reply.text
    assert bot.approval_posts() == []


def test_removing_more_than_the_balance_is_refused_with_the_balance(bot: BotUnderTest):
    reply = bot.command("remove initech 100000", user=ADMIN)
    assert "initech has only 900 credits, so 100,000 cannot be removed" in reply.text
    assert "nothing was changed" in reply.text
    assert "Remove done" not in reply.text
    assert bot.simulator.state.writes() == []


def test_removing_more_than_the_balance_is_refused_before_a_request(bot: BotUnderTest):
    reply = bot.command("remove initech 1000", user=OPERATOR)
    assert "initech has only 900 credits" in reply.text
    assert bot.approval_posts() == []


def test_a_large_change_by_an_admin_asks_to_confirm(bot: BotUnderTest):
    prompt = bot.command("add initech 20,000", user=ADMIN)
    assert "Confirm: add 20,000 for initech" in prompt.text
    assert "20,000 credits is above 10,000 (CREDITS_CONFIRM_ABOVE)" in prompt.text
    assert "900 credits now → 20,900 credits if you confirm" in prompt.text
    assert bot.simulator.state.writes() == []
    done = click_prompt(bot, prompt, CONFIRM, ADMIN)
    assert "Add done for *initech*" in done.text
    assert len(bot.simulator.state.writes()) == 1


def test_confirm_above_can_be_lowered(start_bot: BotFactory):
    bot = start_bot(CREDITS_CONFIRM_ABOVE="100")
    assert "Confirm: add 101 for initech" in bot.command("add initech 101", user=ADMIN).text
    assert "Add done" in bot.command("add initech 100", user=ADMIN).text
