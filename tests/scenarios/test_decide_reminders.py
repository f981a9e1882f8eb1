"""Reminders and escalation in the clock, at exact times from an injected clock: a pending
request is re-announced in its thread (backing off), the escalation group is called in
once, and expiry tells the requester. Requests arrive as signed Slack requests."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.adapters.store import SqlStore
from bot.transports.assembly import build_clock
from tests.helpers import wait_until
from tests.scenarios.conftest import (
    APPROVAL_CHANNEL,
    ONCALL_GROUP,
    USERS,
    BotFactory,
    backend_client,
)

OPERATOR, APPROVER = USERS["operator"], USERS["approver"]
ESCALATION_GROUP = "S0ESCALAT"


class FakeTime:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_reminders_back_off_escalation_is_once_and_expiry_tells_the_requester(
    start_bot: BotFactory,
):
    bot = start_bot(
        CREDITS_REMIND_AFTER="30m",
        CREDITS_ESCALATE_AFTER="2h",
        CREDITS_ESCALATE_TO=ESCALATION_GROUP,
    )
    assert "as request *#1*" in bot.command("add globex 500", user=OPERATOR).text
    [post] = bot.approval_posts()
    store = SqlStore.from_url(bot.settings.database_url)
    requested = store.get_request(1)
    assert requested is not None
    t0 = requested.requested_at
    time = FakeTime(t0)
    clock = build_clock(
        bot.settings, backend=backend_client(bot.simulator, bot.api_version), clock=time
    )

    def thread_replies() -> list[str]:
        return [
            c.payload["text"]
            for c in bot.slack.state.calls_to("chat.postMessage")
            if c.payload.get("thread_ts") == post.result["ts"]
        ]

    posted_at: list[timedelta] = []
    for minutes in range(0, 24 * 60, 1):
        time.now = t0 + timedelta(minutes=minutes)
        if clock.run_reminders():
            posted_at.append(timedelta(minutes=minutes))
    # 30 min, then backing off (1 h 30, 3 h 30, 7 h 30, 15 h 30); escalation once at 2 h.
    assert posted_at == [
        timedelta(minutes=30),
        timedelta(minutes=90),
        timedelta(hours=2),
        timedelta(minutes=210),
        timedelta(minutes=450),
        timedelta(minutes=930),
    ]
    replies = thread_replies()
    assert len(replies) == 6
    first, _, escalation, after = replies[0], replies[1], replies[2], replies[3]
    assert first.startswith(f"<!subteam^{ONCALL_GROUP}> <@{APPROVER}>: request *#1*")
    assert "has waited 30 min for a decision" in first
    assert "`/credits approve 1`" in first
    assert OPERATOR not in first.split(":")[0]  # the requester is not asked to decide
    assert escalation.startswith(f"<!subteam^{ESCALATION_GROUP}>: request *#1*")
    assert "has waited 2 h and no approver has decided it" in escalation
    assert f"<!subteam^{ESCALATION_GROUP}>" in after  # once escalated, the group stays in
    assert "has waited 3 h 30 min" in after

    time.now = t0 + timedelta(hours=24)
    clock.run_expiry()
    notice = wait_until(
        lambda: [
            c.payload["text"]
            for c in bot.slack.state.calls_to("chat.postMessage")
            if c.payload.get("channel") == OPERATOR
        ]
    )
    assert notice == [
        "Your request #1 (add 500 for globex) expired: nobody decided it in time, and "
        "nothing was changed. Ask again if it is still needed."
    ]
    assert clock.run_reminders() == 0
    audit = bot.command("audit globex", user=APPROVER).text
    assert "*reminded approvers of* #1" in audit
    clock.stop()
    store.close()


def test_a_decided_request_is_not_reminded_and_one_never_posted_is_reminded_in_the_channel(
    start_bot: BotFactory,
):
    bot = start_bot(CREDITS_REMIND_AFTER="10m")
    bot.slack.state.missing_channels.add(APPROVAL_CHANNEL)
    assert "could not be posted" in bot.command("add globex 500", user=OPERATOR).text
    bot.slack.state.missing_channels.discard(APPROVAL_CHANNEL)
    assert "as request *#2*" in bot.command("add globex 600", user=OPERATOR).text
    assert "approved and applied" in bot.command("approve 2", user=APPROVER).text
    store = SqlStore.from_url(bot.settings.database_url)
    first = store.get_request(1)
    assert first is not None
    time = FakeTime(first.requested_at + timedelta(minutes=10))
    clock = build_clock(
        bot.settings, backend=backend_client(bot.simulator, bot.api_version), clock=time
    )
    assert clock.run_reminders() == 1
    [reminder] = [
        c.payload
        for c in bot.slack.state.calls_to("chat.postMessage")
        if "has waited" in c.payload.get("text", "")
    ]
    assert reminder["channel"] == APPROVAL_CHANNEL
    assert "thread_ts" not in reminder
    assert "request *#1*" in reminder["text"]
    clock.stop()
    store.close()
