"""Secrets never leave: run a mixed scenario with distinctive secret values, make
SendGrid echo the credential back raw, URL-encoded and inside an HTML error page,
and scan every raw log record (DEBUG, before any formatter), every message sent to
Slack, every reply, `/credits audit` and the database file for any fragment of
8 or more characters of each secret, in every encoding."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.simulator import FaultRule, SimulatorState, sample_state
from tests.helpers import wait_until
from tests.leaks import encodings, leaked
from tests.scenarios.conftest import USERS, BotFactory

# Each holds `+ / & < "`, which URL-, JSON- and HTML-encoding all write differently.
SENDGRID_KEY = 'SG.Rk+7/q&W<2"xZ=pL9+mT/aB&c<Y"d'
SIGNING_SECRET = 's1gn+s/c&r<t"Zq8+w/E&r<T"y5Hk2'
BOT_TOKEN = 'xoxb-17+a/B&c<D"e-Fg+h/I&j<K"l'
SECRETS = {
    "SENDGRID_API_KEY": SENDGRID_KEY,
    "signing secret": SIGNING_SECRET,
    "bot token": BOT_TOKEN,
}


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def test_the_leak_check_sees_fragments_in_every_encoding():
    """The scan itself: a 17-character cut of the key, in each encoding, is found."""
    cut = SENDGRID_KEY[:17]
    for form in encodings(cut):
        assert leaked(SENDGRID_KEY, f"preview: …{form}"), form
    assert not leaked(SENDGRID_KEY, "api_key=******** " + SENDGRID_KEY[:7])


@pytest.fixture
def sim_state() -> SimulatorState:
    return sample_state(api_key=SENDGRID_KEY, rate_limit=None)


def test_no_secret_fragment_in_logs_messages_audit_or_database(
    start_bot: BotFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    bot = start_bot(
        SENDGRID_API_KEY=SENDGRID_KEY,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
    )
    caplog.set_level(logging.DEBUG)
    state = bot.simulator.state
    bot.command("show globex", user=USERS["viewer"])
    bot.command("add globex 500", user=USERS["operator"])
    bot.click("approval_approve", USERS["approver"])
    wait_until(lambda: bot.slack.state.calls_to("chat.update"))

    state.add_fault(FaultRule(kind="error200", arg="echo-url", times=1))
    url_echo = bot.command("show acme-eu", user=USERS["viewer"])  # the key, URL-encoded
    state.add_fault(FaultRule(kind="error200", arg="echo", times=1))
    raw_echo = bot.command("show acme-eu", user=USERS["viewer"])  # the key as sent
    state.add_fault(FaultRule(kind="html-echo", times=1))
    html_read = bot.command("show acme-eu", user=USERS["viewer"])  # HTML page, key 100 in
    # The same page in answer to a change: its outcome goes to the log, the audit and the DB.
    state.add_fault(FaultRule(kind="html-echo", task="increment", times=1))
    html_write = bot.command("add globex 1", user=USERS["admin"])
    state.add_fault(FaultRule(kind="status", arg="503"))
    bot.command("add globex 1", user=USERS["admin"])
    state.clear_faults()
    audit = bot.command("audit", user=USERS["viewer"])

    # The faults were served and reached the replies (so the scan below can fail).
    assert "api_key=********" in url_echo.text
    assert "api_key=********" in raw_echo.text
    assert "could not read" in html_read.text
    assert "may or may not have been applied" in html_write.text
    assert len([c for c in state.calls() if c.outcome == "fault:html-echo"]) == 2

    records = caplog.records
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r} "
        + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in records
    )
    payloads = [c.payload for c in bot.slack.state.calls] + list(bot.slack.state.responses)
    sent = json.dumps(payloads) + "\n" + "\n".join(strings_in(payloads))
    database = "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in tmp_path.glob("bot.sqlite3*")
    )
    sources = {"log": logged, "Slack": sent, "audit": audit.text, "database": database}
    assert "globex" in logged
    assert "globex" in sent
    assert "api_key=********" in audit.text  # the HTML page's outcome, scrubbed
    assert "api_key=********" in database
    found = {
        (name, where): fragments
        for name, secret in SECRETS.items()
        for where, haystack in sources.items()
        if (fragments := leaked(secret, haystack))
    }
    assert not found
