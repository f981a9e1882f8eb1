"""The digest's buttons and the alert commands, clicked and typed as in Slack."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.slack.web import build_web_client
from bot.adapters.store import SqlStore
from bot.adapters.store.alerts import SqlAlertStore
from bot.commands.sweep import SweepService
from bot.domain.alerts import Thresholds
from bot.transports.slack.alerts import SlackAlertPoster
from tests.fakes.slack_requests import block_actions_body, post_signed, view_submission_body
from tests.helpers import wait_until
from tests.scenarios.conftest import (
    SIGNING_SECRET,
    USERS,
    BotUnderTest,
    Reply,
    backend_client,
)

ALERTS = "C0ALERTS1"
ADMIN, APPROVER, OPERATOR, VIEWER = (
    USERS["admin"],
    USERS["approver"],
    USERS["operator"],
    USERS["viewer"],
)


class Sweeps:
    """The clock's sweep, on the same database as the bot under test."""

    def __init__(self, bot: BotUnderTest, database: Path) -> None:
        self.bot = bot
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        self.store = SqlStore.from_url(f"sqlite:///{database}")
        self.service = SweepService(
            backend=backend_client(
                bot.simulator, bot.api_version, logger=logging.getLogger("test.sweeps")
            ),
            store=SqlAlertStore(self.store),
            poster=SlackAlertPoster(
                client=build_web_client(token="xoxb-alerts", base_url=bot.slack.api_url),
                channel_id=ALERTS,
                sleep=lambda _: None,
            ),
            thresholds=Thresholds(below=1000, percent=10),
            clock=lambda: self.now,
        )

    def run(self, **advance: float):
        self.now += timedelta(**advance)
        return self.service.sweep()

    def digest(self) -> dict:
        posts = self.bot.slack.state.calls_to("chat.postMessage")
        return [c for c in posts if c.payload.get("channel") == ALERTS][-1].payload

    def click(self, action_id: str, subuser: str, user: str) -> Reply:
        before = len(self.bot.slack.state.responses)
        body = block_actions_body(
            user_id=user,
            posted=self.digest(),
            channel=ALERTS,
            ts="1700000000.000001",
            action_id=action_id,
            response_url=self.bot.slack.response_url(f"{action_id}-{user}"),
            block_id=f"alert-{subuser}",
        )
        assert post_signed(self.bot.events_url, SIGNING_SECRET, body).status_code == 200
        return Reply(200, "", self.bot.slack.state.wait_for_responses(before + 1)[before])


@pytest.fixture
def sweeps(bot: BotUnderTest, tmp_path: Path):
    sweeps = Sweeps(bot, tmp_path / "bot.sqlite3")
    yield sweeps
    sweeps.store.close()


def test_threshold_is_for_approvers_and_changes_the_next_sweep(bot, sweeps):
    refused = bot.command("threshold acme-us 200,000", user=OPERATOR)
    assert "needs the *approver* role" in refused.text
    done = bot.command("threshold acme-us 200,000", user=APPROVER)
    assert "now start at 200,000 credits" in done.text
    report = sweeps.run()
    [alert] = [a for a in report.alerts if a.assessment.user == "acme-us"]
    assert alert.assessment.reason == "at or below 200,000"
    assert (
        f"<@{APPROVER}> *set the alert threshold of* *acme-us*"
        in bot.command("audit acme-us", user=VIEWER).text
    )


def test_snooze_button_silences_that_subuser(bot, sweeps):
    sweeps.run()
    refused = sweeps.click("alert_snooze", "globex", VIEWER)
    assert "needs the *operator* role" in refused.text
    snoozed = sweeps.click("alert_snooze", "globex", OPERATOR)
    assert "Alerts for *globex* are snoozed until 20" in snoozed.text
    bot.simulator.state.subusers["globex"].credit_remain = 0
    assert all(a.assessment.user != "globex" for a in sweeps.run(hours=1).alerts)
    assert (
        f"<@{OPERATOR}> *snoozed alerts for* *globex*"
        in bot.command("audit globex", user=VIEWER).text
    )


def test_add_credits_button_opens_a_dialog_that_runs_add(bot, sweeps):
    sweeps.run()
    body = block_actions_body(
        user_id=ADMIN,
        posted=sweeps.digest(),
        channel=ALERTS,
        ts="1700000000.000001",
        action_id="alert_add_credits",
        response_url=bot.slack.response_url("add"),
        block_id="alert-globex",
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200
    [opened] = wait_until(lambda: bot.slack.state.calls_to("views.open"))
    # USER, then the digest it came from (so its line can be edited after the add)
    assert opened.payload["view"]["private_metadata"] == f"globex {ALERTS} 1700000000.000001"

    def submit(user: str, amount: str):
        values = {"amount": {"amount_input": {"type": "plain_text_input", "value": amount}}}
        return post_signed(
            bot.events_url,
            SIGNING_SECRET,
            view_submission_body(
                user_id=user,
                callback_id="alert_add_credits_amount",
                private_metadata="globex",
                values=values,
            ),
        )

    bad = submit(ADMIN, "1.5")
    assert bad.json()["response_action"] == "errors"
    assert "not a whole number" in bad.json()["errors"]["amount"]
    assert submit(ADMIN, "1,500").status_code == 200
    dm = wait_until(
        lambda: [
            c.payload
            for c in bot.slack.state.calls_to("chat.postMessage")
            if c.payload.get("channel") == ADMIN
        ]
    )
    if bot.api_version == "v2":  # globex's monthly plan would end: the DM asks first
        assert "Confirm: add 1,500 for globex" in dm[0]["text"]
        click = block_actions_body(
            user_id=ADMIN,
            posted=dm[0],
            channel="D0ADMIN",
            ts="1700000000.000002",
            action_id="change_confirm",
            response_url=bot.slack.response_url("confirm"),
        )
        assert post_signed(bot.events_url, SIGNING_SECRET, click).status_code == 200
        done = wait_until(lambda: [r for r in bot.slack.state.responses if "Add done" in str(r)])
        assert "640 credits → 2,140 credits" in str(done[0])
    else:
        assert "640 credits → 2,140 credits" in dm[0]["text"]
    # An operator's amount goes through the approval rules like the slash command.
    assert submit(OPERATOR, "500").status_code == 200
    wait_until(bot.approval_posts)
    assert [w.params["credits"] for w in bot.simulator.state.writes()] == ["1500"]


def test_show_tells_when_credits_run_out(bot, sweeps):
    bot.simulator.state.subusers["acme-us"].credit_remain = 10_000
    sweeps.run()
    bot.simulator.state.subusers["acme-us"].credit_remain = 8_000
    sweeps.run(hours=1)  # 2,000 an hour
    assert "Runs out in ~4 h at the recent pace" in bot.command("show acme-us").text


def test_the_add_dialogs_amount_and_reason_are_used_as_parsed(bot, sweeps):
    """The dialog's amount is parsed once, in the dialog; it is not written back into
    command text and parsed again, so the reason is kept exactly as typed."""
    values = {
        "amount": {"amount_input": {"type": "plain_text_input", "value": "1,500"}},
        "reason": {"reason_input": {"type": "plain_text_input", "value": "R&amp;D  budget"}},
    }
    body = view_submission_body(
        user_id=ADMIN,
        callback_id="alert_add_credits_amount",
        private_metadata="acme-us",
        values=values,
    )
    assert post_signed(bot.events_url, SIGNING_SECRET, body).status_code == 200
    wait_until(lambda: bot.simulator.state.writes(user="acme-us"))
    [event] = wait_until(lambda: sweeps.store.audit(target="acme-us"))
    assert (event.arguments or {}).get("reason") == "R&amp;D budget"
    assert [w.params["credits"] for w in bot.simulator.state.writes()] == ["1500"]
