"""Issue 12, seen #5: every change can say why, and approvers see it.

The rest of the line after a change's arguments is its reason; ticket ids (with
CREDITS_TICKET_URL) and URLs become links; it is on the card, in the requester's
DM, in the audit and in the Add credits dialog. CREDITS_REQUIRE_REASON=true
refuses a change without one.
"""

from __future__ import annotations

import json

from bot.transports.slack.alerts import add_credits_dialog
from tests.fakes.slack_requests import post_signed, view_submission_body
from tests.helpers import wait_until
from tests.scenarios.conftest import SIGNING_SECRET, USERS, BotFactory, BotUnderTest

OPERATOR, APPROVER, ADMIN, VIEWER = (
    USERS["operator"],
    USERS["approver"],
    USERS["admin"],
    USERS["viewer"],
)
TICKETS = "https://support.example.com/tickets/{ticket}"
LINKED = "<https://support.example.com/tickets/ZD-4411|ZD-4411> spring campaign"


def dms_to(bot: BotUnderTest, user: str) -> list[str]:
    return [
        json.dumps(c.payload, ensure_ascii=False)
        for c in bot.slack.state.calls_to("chat.postMessage")
        if c.payload.get("channel") == user
    ]


def test_the_reason_is_on_the_card_in_the_dm_and_in_the_audit(start_bot: BotFactory):
    bot = start_bot(CREDITS_TICKET_URL=TICKETS)
    reply = bot.command("add initech 500 ZD-4411 spring campaign", user=OPERATOR)
    assert f"Reason: {LINKED}" in reply.text
    card = json.dumps(bot.approval_posts()[-1].payload, ensure_ascii=False)
    assert f"Reason: {LINKED}" in card
    bot.click("approval_approve", APPROVER)
    dm = wait_until(lambda: dms_to(bot, OPERATOR))
    assert LINKED in dm[0]
    audit = bot.command("audit initech", user=VIEWER).text
    assert "Reason: ZD-4411 spring campaign" in audit


def test_a_direct_change_keeps_its_reason_and_urls_become_links(bot: BotUnderTest):
    reply = bot.command("add initech 5 see https://tracker.example.com/x?a=1&b=2", user=ADMIN)
    assert "Add done for *initech*" in reply.text
    assert "Reason: see <https://tracker.example.com/x?a=1&amp;b=2>" in reply.text
    audit = bot.command("audit initech", user=VIEWER).text
    assert "Reason: see https://tracker.example.com/x?a=1&amp;b=2" in audit


def test_without_a_ticket_url_ticket_ids_stay_text(bot: BotUnderTest):
    reply = bot.command("add initech 5 ZD-4411", user=ADMIN)
    assert "Reason: ZD-4411" in reply.text


def test_a_reason_can_be_required(start_bot: BotFactory):
    bot = start_bot(CREDITS_REQUIRE_REASON="true")
    for user in (ADMIN, OPERATOR):
        refused = bot.command("add initech 5", user=user)
        assert "A reason is required" in refused.text
    assert bot.simulator.state.writes() == []
    assert bot.approval_posts() == []
    assert "Add done" in bot.command("add initech 5 ZD-1 refund", user=ADMIN).text


def test_recurring_and_unlimit_take_a_reason_too(bot: BotUnderTest):
    bot.command("recurring initech 1,000 monthly ZD-7 new plan", user=OPERATOR)
    bot.command("unlimit hooli ZD-8 enterprise", user=OPERATOR)
    pending = [json.dumps(p.payload) for p in bot.approval_posts()]
    assert "Reason: ZD-7 new plan" in pending[0]
    assert "Reason: ZD-8 enterprise" in pending[1]


def test_the_add_credits_dialog_asks_for_a_reason_and_passes_it_on(bot: BotUnderTest):
    view = add_credits_dialog("initech")
    labels = [b["label"]["text"] for b in view["blocks"]]
    assert labels[1].startswith("Reason")
    values = {
        "amount": {"amount_input": {"type": "plain_text_input", "value": "5"}},
        "reason": {"reason_input": {"type": "plain_text_input", "value": "ZD-9\nlow"}},
    }
    body = view_submission_body(
        user_id=ADMIN,
        callback_id="alert_add_credits_amount",
        private_metadata="initech",
        values=values,
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200
    dm = wait_until(lambda: dms_to(bot, ADMIN))
    assert "Reason: ZD-9 low" in dm[0]
    assert "Reason: ZD-9 low" in bot.command("audit initech", user=VIEWER).text
