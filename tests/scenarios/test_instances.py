"""Several real processes: two instances on one PostgreSQL, and a process killed mid-write."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.simulator import DEMO_API_KEY, DEMO_API_USER, FaultRule, SimulatorServer
from tests.fakes.processes import ServeProcess, clean_env, serving
from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.fakes.slack_requests import block_actions_body, post_signed, slash_command_body
from tests.helpers import wait_until
from tests.pg import postgres_url, reset_postgres
from tests.scenarios.conftest import is_notice, wait_for_answers

SECRET = "instances-signing-secret"
OPERATOR = "U0OPERAT1"
VIEWER = "U0VIEWER1"
APPROVERS = [f"U0APP{n:04d}" for n in range(1, 21)]
CHANNEL = "C0APPROVE"


def bot_env(
    simulator: SimulatorServer, slack: FakeSlack, database_url: str, **extra: str
) -> dict[str, str]:
    return clean_env(
        SLACK_BOT_TOKEN="xoxb-instances",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.api_url,
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        DATABASE_URL=database_url,
        CREDITS_OPERATORS=OPERATOR,
        CREDITS_VIEWERS=VIEWER,
        CREDITS_APPROVERS=",".join(APPROVERS),
        CREDITS_APPROVAL_CHANNEL=CHANNEL,
        LOG_LEVEL="WARNING",
        **extra,
    )


def command(url: str, slack: FakeSlack, text: str, user: str, name: str) -> dict:
    before = len(slack.state.responses)
    body = slash_command_body(text=text, user_id=user, response_url=slack.response_url(name))
    assert post_signed(url + "/slack/events", SECRET, body).status_code == 200
    count = before + 1
    while is_notice(message := slack.state.wait_for_responses(count)[count - 1]):
        count += 1  # a "Looking up …" notice; the answer replaces it
    return message


def approve_body(slack: FakeSlack, post: SlackCall, approver: str, name: str) -> str:
    """The Approve click of `approver` on the posted request, as Slack sends it."""
    return block_actions_body(
        user_id=approver,
        posted=post.payload,
        channel=post.result["channel"],
        ts=post.result["ts"],
        action_id="approval_approve",
        response_url=slack.response_url(name),
    )


def approval_post(slack: FakeSlack) -> SlackCall:
    return wait_until(
        lambda: [
            c
            for c in slack.state.calls_to("chat.postMessage")
            if c.payload.get("channel") == CHANNEL
        ]
    )[-1]


@pytest.mark.postgres
def test_twenty_concurrent_approvals_on_two_instances_execute_once(simulator: SimulatorServer):
    database_url = postgres_url()
    if database_url is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    reset_postgres(database_url)
    with FakeSlack().running() as slack:
        env = bot_env(simulator, slack, database_url)
        # Both start at once: migrations run under an advisory lock.
        first, second = ServeProcess(env), ServeProcess(env)
        try:
            first.wait_healthy()
            second.wait_healthy()
            reply = command(first.url, slack, "add globex 500", OPERATOR, "request")
            assert "Sent for approval as request" in str(reply)
            post = approval_post(slack)
            bodies = [
                (
                    (first if index % 2 else second).url,
                    approve_body(slack, post, approver, f"click-{index}"),
                )
                for index, approver in enumerate(APPROVERS)
            ]
            barrier = threading.Barrier(len(bodies))
            statuses: list[int] = []

            def click(url: str, body: str) -> None:
                barrier.wait()
                statuses.append(post_signed(url + "/slack/events", SECRET, body).status_code)

            threads = [threading.Thread(target=click, args=pair) for pair in bodies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert statuses == [200] * 20
            answers = [str(r) for r in wait_for_answers(slack, 21, timeout=30)[1:]]
        finally:
            first.stop()
            second.stop()
    assert len(simulator.state.writes()) == 1
    assert sum("approved and applied." in a and "already" not in a for a in answers) == 1
    assert sum("was already handled by <@U0APP" in a for a in answers) == 19


def test_killed_mid_write_leaves_the_request_unknown_and_never_repeats_it(
    simulator: SimulatorServer, tmp_path: Path
):
    database_url = f"sqlite:///{tmp_path / 'killed.sqlite3'}"
    simulator.state.add_fault(FaultRule(kind="slow-write", arg="60000", task="increment"))
    with FakeSlack().running() as slack:
        env = bot_env(simulator, slack, database_url, SENDGRID_TIMEOUT="45")
        victim = ServeProcess(env).wait_healthy()
        try:
            command(victim.url, slack, "add globex 500", OPERATOR, "request")
            post = approval_post(slack)
            click = approve_body(slack, post, APPROVERS[0], "click")
            assert post_signed(victim.url + "/slack/events", SECRET, click).status_code == 200
            # SendGrid has applied the increment and is slow to answer: kill now.
            wait_until(lambda: simulator.state.writes(task="increment"))
        finally:
            victim.kill()
        updates_before = len(slack.state.calls_to("chat.update"))
        with serving(env) as restarted:
            pending = command(restarted.url, slack, "pending", VIEWER, "pending")
            text = str(pending)
            assert "#1* add 500 for globex" in text
            assert "verify the balance" in text
            update = wait_until(lambda: slack.state.calls_to("chat.update")[updates_before:])
            assert "verify the balance" in str(update[0].payload)
            audit = str(command(restarted.url, slack, "audit globex", VIEWER, "audit"))
            assert "*recovered*" in audit  # found executing after the restart
            # A second approval cannot run it again either.
            again = approve_body(slack, post, APPROVERS[1], "again")
            assert post_signed(restarted.url + "/slack/events", SECRET, again).status_code == 200
            refused = wait_until(
                lambda: [r for r in slack.state.responses if "already handled" in str(r)]
            )
            assert "verify the balance" in str(refused[0])
    assert len(simulator.state.writes(task="increment")) == 1
    assert len([c for c in simulator.state.calls() if c.task == "increment"]) == 1
