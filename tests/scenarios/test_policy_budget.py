"""Issue 12, seen #1: splitting a change must not bypass approval.

With CREDITS_AUTO_APPROVE_MAX=500 the default budget is 1,500 credits per operator
(and per subuser) in 24 h, counted in the shared database across instances.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.scenarios.conftest import USERS, BotFactory, wait_for_answers
from tests.scenarios.policy_helpers import command_body, database_url, send_all_at_once

OPERATOR, VIEWER = USERS["operator"], USERS["viewer"]
SECOND_OPERATOR = "U0OPERAT2"


def test_twenty_split_adds_apply_only_up_to_the_budget(start_bot: BotFactory):
    bot = start_bot(CREDITS_AUTO_APPROVE_MAX="500")
    replies = [bot.command("add initech 500", user=OPERATOR).text for _ in range(20)]
    applied = [r for r in replies if "Add done for *initech*" in r]
    requested = [r for r in replies if "Sent for approval as request" in r]
    assert (len(applied), len(requested)) == (3, 17)  # budget 1,500 ÷ 500
    assert len(bot.simulator.state.writes(user="initech")) == 3
    assert (
        "auto-approved credits in the last 24 h would pass the 1,500-credit budget"
        in (requested[0])
    )
    assert "(you: 1,500; initech: 1,500)" in requested[0]
    assert len(bot.approval_posts()) == 17


def test_the_budget_is_per_subuser_too(start_bot: BotFactory):
    bot = start_bot(
        CREDITS_AUTO_APPROVE_MAX="500",
        CREDITS_AUTO_APPROVE_BUDGET="1000",
        CREDITS_OPERATORS=f"{OPERATOR},{SECOND_OPERATOR}",
    )
    for _ in range(2):
        assert "Add done" in bot.command("add initech 500", user=OPERATOR).text
    # Another operator has budget left, but initech has had its 1,000 today.
    other = bot.command("add initech 500", user=SECOND_OPERATOR).text
    assert "Sent for approval as request" in other
    assert "(you: 0; initech: 1,000)" in other
    assert "Add done" in bot.command("add wonka 500", user=SECOND_OPERATOR).text
    assert len(bot.simulator.state.writes()) == 3


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_twenty_concurrent_split_adds_on_two_instances_stay_within_the_budget(
    start_bot: BotFactory, tmp_path: Path, database: str
):
    url = database_url(database, tmp_path)
    first = start_bot(CREDITS_AUTO_APPROVE_MAX="500", DATABASE_URL=url)
    second = start_bot(CREDITS_AUTO_APPROVE_MAX="500", DATABASE_URL=url)
    bodies = [
        (
            (first if n % 2 else second).events_url,
            command_body(first, "add initech 500", OPERATOR, f"split-{n}"),
        )
        for n in range(20)
    ]
    assert send_all_at_once(bodies) == [200] * 20
    answers = [str(m) for m in wait_for_answers(first.slack, 20, timeout=60)]
    assert len(first.simulator.state.writes(user="initech")) <= 3
    applied = sum("Add done for *initech*" in a for a in answers)
    requested = sum("Sent for approval as request" in a for a in answers)
    assert applied == len(first.simulator.state.writes(user="initech"))
    assert applied + requested == 20
    assert applied == 3  # nothing failed, so the whole budget was used, and no more
    wait_until(lambda: len(first.approval_posts()) == 17, timeout=30)


def test_failed_auto_approved_adds_do_not_use_the_budget(start_bot: BotFactory):
    bot = start_bot(CREDITS_AUTO_APPROVE_MAX="500")
    refused = bot.command("add nosuchuser 500", user=OPERATOR).text
    assert "no subuser or customer called" in refused
    for _ in range(3):
        assert "Add done" in bot.command("add initech 500", user=OPERATOR).text
