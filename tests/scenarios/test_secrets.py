"""Secrets never leave: run a mixed scenario with distinctive secret values and scan
every raw log record (DEBUG, before any redacting formatter), every message sent to
Slack, every reply, and the database file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.simulator import FaultRule
from tests.helpers import wait_until
from tests.scenarios.conftest import BOT_TOKEN, SIGNING_SECRET, USERS, BotUnderTest


@pytest.fixture
def api_version() -> str:
    return "v2"


def test_no_secret_in_logs_messages_or_database(
    bot: BotUnderTest, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    key = "demo-key"  # the simulator's credential, configured as SENDGRID_API_KEY
    bot.command("show globex", user=USERS["viewer"])
    bot.command("add globex 500", user=USERS["operator"])
    bot.click("approval_approve", USERS["approver"])
    bot.simulator.state.add_fault(FaultRule(kind="error200", arg="echo", times=1))
    bot.command("show acme-eu", user=USERS["viewer"])  # SendGrid echoes the key back
    bot.simulator.state.add_fault(FaultRule(kind="status", arg="503"))
    bot.command("add globex 1", user=USERS["admin"])
    bot.command("audit", user=USERS["viewer"])
    wait_until(lambda: bot.slack.state.calls_to("chat.update"))

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    sent = json.dumps([c.payload for c in bot.slack.state.calls] + list(bot.slack.state.responses))
    database = (tmp_path / "bot.sqlite3").read_bytes().decode("utf-8", "replace")
    assert "globex" in logged
    assert "globex" in sent
    assert "globex" in database
    for secret in (key, SIGNING_SECRET, BOT_TOKEN):
        assert secret not in logged, f"{secret[:4]}… in a log record"
        assert secret not in sent, f"{secret[:4]}… in a Slack message"
        assert secret not in database, f"{secret[:4]}… in the database"
