"""The App Home, the shortcuts' request modal and its type-ahead, and the "Looking up…"
notice, driven as Slack drives them (signed events, shortcuts, block_suggestion and
view_submission payloads) against the real app, the simulator and the fake Slack."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from slack_sdk.models.views import View

from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.commands.sweep import SweepService
from bot.domain.alerts import Thresholds
from bot.simulator.state import FaultRule, SimulatedAccount
from bot.transports.assembly import build_clock
from tests.fakes.slack_api import SlackCall
from tests.fakes.slack_requests import post_signed, signed_headers, view_submission_body
from tests.helpers import wait_until
from tests.scenarios.conftest import USERS, BotUnderTest, backend_client

ADMIN, APPROVER, OPERATOR, VIEWER = (
    USERS["admin"],
    USERS["approver"],
    USERS["operator"],
    USERS["viewer"],
)
TEAM = {"id": "T0EXAMPLE", "domain": "example"}


def sweep(bot: BotUnderTest, database: Path) -> None:
    """One sweep on the bot's database, as the clock would run it (no digest posted)."""
    store = SqlStore.from_url(f"sqlite:///{database}")
    try:
        SweepService(
            backend=backend_client(
                bot.simulator, bot.api_version, logger=logging.getLogger("test.sweeps")
            ),
            store=SqlAlertStore(store),
            poster=None,
            thresholds=Thresholds(below=1000, percent=10),
            clock=lambda: datetime.now(UTC),
        ).sweep()
    finally:
        store.close()


def post_event(bot: BotUnderTest, event: dict[str, Any]) -> requests.Response:
    body = json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0EXAMPLE",
            "api_app_id": "A0CREDITS",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
        }
    )
    headers = {**signed_headers(bot.signing_secret, body), "Content-Type": "application/json"}
    return requests.post(bot.events_url, data=body.encode(), headers=headers, timeout=10)


def post_payload(bot: BotUnderTest, payload: dict[str, Any]) -> requests.Response:
    body = urlencode({"payload": json.dumps(payload)})
    return post_signed(bot.events_url, bot.signing_secret, body)


def open_home(bot: BotUnderTest, user: str) -> None:
    response = post_event(
        bot,
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME001",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
    )
    assert response.status_code == 200, response.text


def homes(bot: BotUnderTest, user: str) -> list[SlackCall]:
    return [c for c in bot.slack.state.calls_to("views.publish") if c.payload["user_id"] == user]


def view_of(call: SlackCall) -> dict[str, Any]:
    view = call.payload["view"]
    return json.loads(view) if isinstance(view, str) else view


def checked(view: dict[str, Any]) -> dict[str, Any]:
    """The view parsed back through slack_sdk's models: raises if Block Kit would refuse it."""
    parsed = View(**view)
    parsed.validate_json()
    assert parsed.to_dict()["blocks"] == view["blocks"]
    return view


def texts(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def shortcut(bot: BotUnderTest, user: str) -> requests.Response:
    return post_payload(
        bot,
        {
            "type": "shortcut",
            "token": "deprecated-verification-token",
            "action_ts": f"{time.time():.6f}",
            "team": TEAM,
            "user": {"id": user, "username": "someone", "team_id": "T0EXAMPLE"},
            "is_enterprise_install": False,
            "callback_id": "credits_request",
            "trigger_id": "1337.50.trigger",
        },
    )


def suggest(bot: BotUnderTest, user: str, query: str) -> list[str]:
    response = post_payload(
        bot,
        {
            "type": "block_suggestion",
            "user": {"id": user, "username": "someone", "team_id": "T0EXAMPLE"},
            "container": {"type": "view", "view_id": "V0FORM"},
            "api_app_id": "A0CREDITS",
            "token": "deprecated-verification-token",
            "action_id": "user_select",
            "block_id": "user",
            "value": query,
            "team": TEAM,
            "view": {"id": "V0FORM", "type": "modal", "callback_id": "credits_request_form"},
        },
    )
    assert response.status_code == 200, response.text
    return [option["value"] for option in response.json()["options"]]


def form_values(
    *, user: str, action: str, amount: str = "", period: str | None = None, reason: str = ""
) -> dict[str, Any]:
    def option(value: str | None) -> dict[str, Any] | None:
        return {"text": {"type": "plain_text", "text": value}, "value": value} if value else None

    return {
        "user": {"user_select": {"type": "external_select", "selected_option": option(user)}},
        "action": {"action_select": {"type": "static_select", "selected_option": option(action)}},
        "amount": {"amount_input": {"type": "plain_text_input", "value": amount or None}},
        "period": {"period_select": {"type": "static_select", "selected_option": option(period)}},
        "reason": {"reason_input": {"type": "plain_text_input", "value": reason or None}},
    }


def submit_form(bot: BotUnderTest, actor: str, **fields: Any) -> requests.Response:
    body = view_submission_body(
        user_id=actor,
        callback_id="credits_request_form",
        private_metadata="",
        values=form_values(**fields),
    )
    return post_signed(bot.events_url, bot.signing_secret, body)


def dms_to(bot: BotUnderTest, user: str) -> list[SlackCall]:
    return [
        c for c in bot.slack.state.calls_to("chat.postMessage") if c.payload.get("channel") == user
    ]


# --- the App Home -----------------------------------------------------------------------


def test_opening_the_home_publishes_it_once_naming_the_low_and_exhausted(bot, tmp_path):
    sweep(bot, tmp_path / "bot.sqlite3")
    reads_before = len(bot.simulator.state.calls())
    open_home(bot, VIEWER)
    wait_until(lambda: homes(bot, VIEWER))
    [call] = bot.slack.state.calls_to("views.publish")
    assert call.payload["user_id"] == VIEWER
    view = checked(view_of(call))
    assert view["type"] == "home"
    shown = texts(view)
    for user in ("umbrella", "hooli"):  # exhausted
        assert f"*{user}* — exhausted" in shown
    for user in ("globex", "initech"):  # low: at or below 1,000
        assert f"*{user}* — low" in shown
    assert "acme-us" not in shown
    assert "stark-industries" not in shown
    assert shown.index("umbrella") < shown.index("globex")  # exhausted first
    assert "approval_approve" not in shown  # a viewer decides nothing
    assert len(bot.simulator.state.calls()) == reads_before  # no SendGrid call on open


def test_an_approver_approves_from_the_home_through_the_cards_own_path(bot, tmp_path):
    requested = bot.command("add initech 700 ZD-1 home test", user=OPERATOR)
    assert "#1" in requested.text
    open_home(bot, APPROVER)
    wait_until(lambda: homes(bot, APPROVER))
    view = checked(view_of(homes(bot, APPROVER)[-1]))
    assert "*#1* add 700 for initech" in texts(view)
    actions = next(b for b in view["blocks"] if b.get("block_id") == "approval-1")
    assert [e["action_id"] for e in actions["elements"]] == ["approval_approve", "approval_deny"]
    before = bot.simulator.state.subusers["initech"].credit_remain
    response = post_payload(
        bot,
        {
            "type": "block_actions",
            "user": {"id": APPROVER, "username": "someone", "team_id": "T0EXAMPLE"},
            "api_app_id": "A0CREDITS",
            "token": "deprecated-verification-token",
            "container": {"type": "view", "view_id": "V0HOME"},
            "trigger_id": "1337.51.trigger",
            "team": TEAM,
            "view": {"id": "V0HOME", "type": "home", **view},
            "actions": [{**actions["elements"][0], "block_id": "approval-1"}],
        },
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: dms_to(bot, APPROVER))
    assert bot.simulator.state.subusers["initech"].credit_remain == before + 700
    # the approval card was updated as after a click on it, and the Home redrawn
    assert wait_until(lambda: bot.slack.state.calls_to("chat.update"))
    wait_until(lambda: "*#1* add 700" not in texts(view_of(homes(bot, APPROVER)[-1])))


def test_a_request_redraws_the_home_of_a_recent_viewer(bot):
    open_home(bot, APPROVER)
    wait_until(lambda: homes(bot, APPROVER))
    bot.command("add wonka 300", user=OPERATOR)
    wait_until(lambda: len(homes(bot, APPROVER)) >= 2)
    assert "add 300 for wonka" in texts(view_of(homes(bot, APPROVER)[-1]))


def test_the_clocks_sweep_redraws_the_homes_of_recent_viewers(bot):
    open_home(bot, VIEWER)
    wait_until(lambda: homes(bot, VIEWER))
    assert "umbrella" not in texts(view_of(homes(bot, VIEWER)[-1]))  # nothing swept yet
    clock = build_clock(bot.settings, backend=backend_client(bot.simulator, bot.api_version))
    try:
        assert clock.run_sweep() is not None
    finally:
        clock.stop()
    assert len(homes(bot, VIEWER)) == 2
    assert "*umbrella* — exhausted" in texts(view_of(homes(bot, VIEWER)[-1]))


# --- shortcuts, the modal and its type-ahead -------------------------------------------


def test_the_global_shortcut_opens_the_form_with_a_subuser_type_ahead(bot):
    assert shortcut(bot, OPERATOR).status_code == 200
    [call] = wait_until(lambda: bot.slack.state.calls_to("views.open"))
    assert call.payload["trigger_id"] == "1337.50.trigger"
    view = checked(view_of(call))
    user_block = next(b for b in view["blocks"] if b["block_id"] == "user")
    assert user_block["element"]["type"] == "external_select"
    assert user_block["element"]["action_id"] == "user_select"


def test_the_type_ahead_ranks_prefix_matches_first_and_offers_nothing_else(bot, tmp_path):
    for number, name in enumerate(("alice", "alicia", "malibu", "bob"), start=900):
        bot.simulator.state.subusers[name] = SimulatedAccount(
            name, f"{name}@example.com", credit_remain=5_000, id=number
        )
    sweep(bot, tmp_path / "bot.sqlite3")
    assert suggest(bot, VIEWER, "ali") == ["alice", "alicia", "malibu"]
    assert suggest(bot, VIEWER, "ALIC") == ["alice", "alicia"]
    assert suggest(bot, VIEWER, "zzz") == []
    assert suggest(bot, USERS["none"], "ali") == []  # no role: no subuser names


def test_an_operators_big_add_from_the_form_becomes_a_request_as_the_command_does(bot):
    response = submit_form(
        bot, OPERATOR, user="initech", action="add", amount="5,000", reason="ZD-9"
    )
    assert response.status_code == 200
    assert response.text == ""  # the form closes
    [dm] = wait_until(lambda: dms_to(bot, OPERATOR))
    assert "#1" in json.dumps(dm.payload)
    from_form = wait_until(bot.approval_posts)[-1].payload
    by_command = bot.command("add initech 5,000 ZD-9", user=OPERATOR)
    assert "#2" in by_command.text
    from_command = wait_until(lambda: bot.approval_posts()[1:])[-1].payload
    assert from_form["text"].replace("#1", "#N") == from_command["text"].replace("#2", "#N")
    assert bot.simulator.state.writes(user="initech") == []  # nothing applied yet


def test_a_viewers_submission_is_refused_beside_the_field(bot):
    response = submit_form(bot, VIEWER, user="initech", action="add", amount="500")
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert "needs the *operator* role" in answer["errors"]["action"]
    assert bot.approval_posts() == []
    assert dms_to(bot, VIEWER) == []


@pytest.mark.parametrize(
    ("fields", "block", "words"),
    [
        ({"user": "initech", "action": "add", "amount": "lots"}, "amount", "lots"),
        ({"user": "initech", "action": "add"}, "amount", "How many credits"),
        ({"user": "initech", "action": "recurring", "amount": "5"}, "period", "needs a period"),
        ({"user": "initech", "action": "unlimit", "amount": "5"}, "amount", "takes no amount"),
    ],
)
def test_a_bad_field_is_shown_beside_it(bot, fields, block, words):
    answer = submit_form(bot, ADMIN, **fields).json()
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [block]
    assert words in answer["errors"][block]


def test_the_message_shortcut_prefills_the_reason_with_a_link_to_the_message(bot):
    response = post_payload(
        bot,
        {
            "type": "message_action",
            "token": "deprecated-verification-token",
            "action_ts": f"{time.time():.6f}",
            "team": TEAM,
            "user": {"id": OPERATOR, "name": "someone"},
            "channel": {"id": "C0SUPPORT", "name": "support"},
            "callback_id": "credits_request_from_message",
            "trigger_id": "1337.52.trigger",
            "message_ts": "1700000000.000100",
            "message": {"type": "message", "ts": "1700000000.000100", "text": "mail stopped?"},
            "response_url": bot.slack.response_url("shortcut"),
        },
    )
    assert response.status_code == 200
    [call] = wait_until(lambda: bot.slack.state.calls_to("views.open"))
    [link] = bot.slack.state.calls_to("chat.getPermalink")
    assert link.payload == {"channel": "C0SUPPORT", "message_ts": "1700000000.000100"}
    view = checked(view_of(call))
    reason = next(b for b in view["blocks"] if b["block_id"] == "reason")
    assert reason["element"]["initial_value"] == (
        "From https://example.slack.com/archives/C0SUPPORT/p1700000000000100"
    )


# --- feedback while SendGrid is slow -----------------------------------------------------


def test_a_slow_answer_is_announced_then_replaced(bot):
    bot.simulator.state.add_fault(FaultRule(kind="latency", arg="1600"))
    before = len(bot.slack.state.responses)
    assert bot.send("show acme-eu", VIEWER).status_code == 200
    notice, answer = bot.slack.state.wait_for_responses(before + 2)[before:]
    assert notice["text"] == "Looking up acme-eu…"
    assert answer["replace_original"] is True
    assert "acme-eu" in json.dumps(answer["blocks"])


def test_a_fast_answer_is_posted_once(bot):
    reply = bot.command("show acme-eu", user=VIEWER)
    # The answer is delivered only after the notice's timer is stopped, and a notice
    # already sent would have come first: this being first means there is none.
    assert "Looking up" not in reply.text
    assert not reply.message.get("replace_original")
