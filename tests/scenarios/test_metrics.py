"""`GET /metrics` after a scenario of signed Slack requests shows exactly what it caused."""

from __future__ import annotations

from bot.simulator import FaultRule
from tests.fakes.slack_requests import post_signed
from tests.helpers import wait_until
from tests.metrics_text import scrape
from tests.scenarios.conftest import SIGNING_SECRET, USERS, BotUnderTest

APPROVE = "approval_approve"


def test_metrics_count_what_a_scenario_did(bot: BotUnderTest, api_version: str):
    fresh = scrape(bot.url)
    assert fresh.value("credits_commands_total") == 0
    assert fresh.value("credits_ack_seconds_count") == 0

    bot.command("show globex", user=USERS["viewer"])
    bot.command("show globex", user=USERS["viewer"])
    bot.command("add globex 5", user=USERS["viewer"])  # refused: viewers may not add
    bot.command("add initech 100", user=USERS["admin"])  # applied at once (a one-off balance)
    bot.command("add globex 500", user=USERS["operator"])  # becomes a request
    bot.command("frobnicate", user=USERS["none"])  # not a subcommand: help
    bot.simulator.state.add_fault(
        FaultRule(kind="ratelimit", arg="1", task="retrieve", user="acme-eu", times=1)
    )
    bot.command("show acme-eu", user=USERS["viewer"])  # 429 once, then answered
    bot.click(APPROVE, USERS["approver"])
    requests_sent = 8

    metrics = wait_until(
        lambda: (m := scrape(bot.url)).value("credits_reply_seconds_count") == requests_sent and m
    )
    commands = {
        ("show", "ok"): 3,
        ("add", "error"): 1,
        ("add", "ok"): 1,
        ("add", "approval_requested"): 1,
        ("invalid", "ok"): 1,
    }
    for (subcommand, outcome), count in commands.items():
        assert (
            metrics.value("credits_commands_total", subcommand=subcommand, outcome=outcome) == count
        ), (subcommand, outcome)
    assert metrics.value("credits_commands_total") == sum(commands.values())

    assert metrics.value("credits_ack_seconds_count") == requests_sent
    assert metrics.value("credits_reply_seconds_count") == requests_sent

    calls = bot.simulator.state.calls()
    assert metrics.value("credits_sendgrid_calls_total") == len(calls)
    assert metrics.value("credits_sendgrid_rate_limited_total") == 1
    assert metrics.value("credits_sendgrid_calls_total", outcome="RateLimited", status="429") == 1
    ok_reads = sum(1 for c in calls if c.outcome == "ok" and c.params.get("task") == "retrieve")
    read = "GET v3/subusers/{user}/credits" if api_version == "v3" else "customer.limit retrieve"
    assert metrics.value("credits_sendgrid_calls_total", endpoint=read, outcome="ok") == ok_reads
    writes = (
        "PATCH v3/subusers/{user}/credits/remaining"
        if api_version == "v3"
        else ("customer.limit increment")
    )
    assert metrics.value("credits_sendgrid_calls_total", endpoint=writes, status="200") == 2
    # Every SendGrid attempt took a token first.
    assert metrics.value("credits_sendgrid_limiter_wait_seconds_count") == len(calls)

    assert metrics.value("credits_approvals_total", state="pending") == 1
    assert metrics.value("credits_approvals_total", state="approved") == 1
    assert metrics.value("credits_approval_decision_seconds_count", state="approved") == 1
    assert metrics.value("credits_approvals_total") == 2


def test_requests_refused_before_bolt_are_acked_and_counted_but_run_nothing(
    bot: BotUnderTest,
):
    body = "command=%2Fcredits&text=show+globex&user_id=U0VIEWER1"
    assert post_signed(bot.events_url, "forged-secret", body).status_code == 401
    metrics = scrape(bot.url)
    assert metrics.value("credits_ack_seconds_count") == 1
    assert metrics.value("credits_commands_total") == 0
    assert metrics.value("credits_sendgrid_calls_total") == 0
    assert SIGNING_SECRET not in metrics.text
