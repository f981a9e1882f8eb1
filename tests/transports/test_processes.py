"""The processes a person starts: console (demo), serve (gunicorn), socket (config check)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.simulator import DEMO_API_KEY, DEMO_API_USER
from bot.transports.slack.server import serve_workers
from tests.fakes.processes import clean_env, serving
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import post_signed, slash_command_body
from tests.helpers import wait_until


def test_console_demo_answers_help_show_and_add():
    # globex has a monthly plan that a v2 add ends: the console asks, `yes` confirms.
    script = (
        "help\n/credits show acme-eu\nadd globex 7\nno\nadd globex 500\nyes\n"
        "show globex\nadd globex 1.5\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo"],
        input=script,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert "Your role: admin" in out
    assert "31,200 credits remaining of 50,000" in out
    assert "Type yes to confirm" in out
    assert "Cancelled; nothing was changed." in out
    assert "640 credits → 1,140 credits" in out
    assert "1,140 credits remaining" in out
    assert "1.5 is not a whole number of credits" in out
    assert "Traceback" not in out + result.stderr


def test_console_without_a_role_only_helps(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--as", "U0STRANGER"],
        input="show acme-eu\n",
        capture_output=True,
        text=True,
        env=clean_env(
            SENDGRID_API_USER="x",
            SENDGRID_API_KEY="y",
            DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}",
        ),
        timeout=60,
        check=True,
    )
    assert "needs the viewer role; you have no role" in result.stdout


SERVE_SECRET = "serve-signing-secret"


def serve_env(simulator, slack: FakeSlack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """`serve`'s environment: the fake Slack, the simulator, a viewer, a SQLite file."""
    return clean_env(
        SLACK_BOT_TOKEN="xoxb-serve",
        SLACK_SIGNING_SECRET=SERVE_SECRET,
        SLACK_API_URL=slack.api_url,
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        CREDITS_VIEWERS="U0VIEWER1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        **extra,
    )


def test_serve_runs_the_app_under_gunicorn(simulator, tmp_path):
    secret = SERVE_SECRET
    with FakeSlack().running() as slack:
        env = serve_env(simulator, slack, tmp_path)
        with serving(env) as server:
            body = slash_command_body(
                text="show globex", user_id="U0VIEWER1", response_url=slack.response_url()
            )
            events = server.url + "/slack/events"
            assert post_signed(events, secret, body).status_code == 200
            [message] = slack.state.wait_for_responses(1)
            assert "640" in message["text"]
            assert post_signed(events, "forged", body).status_code == 401


def test_socket_mode_without_an_app_token_stops_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "socket"],
        capture_output=True,
        text=True,
        env=clean_env(SLACK_BOT_TOKEN="xoxb-1"),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "credits-bot: configuration error: SLACK_APP_TOKEN is required for this command "
        "and is not set"
    )


def test_procfile_web_line_serves_the_same_app(simulator, tmp_path):
    import pathlib

    procfile = pathlib.Path(__file__).parents[2] / "Procfile"
    [web] = [line for line in procfile.read_text().splitlines() if line.startswith("web:")]
    command = web.removeprefix("web:").strip()
    # As the platform runs it: a shell, $PORT set, `python` the app's interpreter.
    assert command.startswith("python ")
    shell = f"PORT={{port}} exec {sys.executable} {command.removeprefix('python ')}"
    secret = "procfile-secret"
    with FakeSlack().running() as slack:
        env = clean_env(
            SLACK_BOT_TOKEN="xoxb-procfile",
            SLACK_SIGNING_SECRET=secret,
            SLACK_API_URL=slack.api_url,
            SENDGRID_API_USER=DEMO_API_USER,
            SENDGRID_API_KEY=DEMO_API_KEY,
            SENDGRID_API_URL=simulator.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'procfile.sqlite3'}",
        )
        with serving(env, ["sh", "-c", shell]) as server:
            body = slash_command_body(
                text="help", user_id="U0ANYONE1", response_url=slack.response_url()
            )
            assert post_signed(server.url + "/slack/events", secret, body).status_code == 200
            [message] = slack.state.wait_for_responses(1)
            assert "no role yet" in str(message)


def test_every_procfile_line_is_a_credits_bot_command():
    import pathlib
    import shlex

    from bot.transports.cli import _parser

    procfile = pathlib.Path(__file__).parents[2] / "Procfile"
    kinds = {}
    for line in procfile.read_text().splitlines():
        kind, command = line.split(":", 1)
        argv = shlex.split(command)
        # `python -m bot`: the buildpack installs requirements.txt, not the project.
        assert argv[:3] == ["python", "-m", "bot"], line
        kinds[kind] = _parser().parse_args(argv[3:]).command
    assert kinds == {"release": "migrate", "web": "serve", "clock": "clock"}


def test_manifest_declares_the_command_and_matches_the_http_mode():
    import pathlib

    import yaml

    manifest = yaml.safe_load((pathlib.Path(__file__).parents[2] / "manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/credits"
    assert command["url"].endswith("/slack/events")
    assert command["usage_hint"]
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "usergroups:read",
        "channels:read",
        "groups:read",
        "files:write",
    }
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True


def test_console_demo_works_on_v3():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo"],
        input="show acme-eu\nadd globex 500\nrecurring hooli 3000 weekly start=2026-12-01\n",
        capture_output=True,
        text=True,
        env=clean_env(SENDGRID_API_VERSION="v3"),
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert "SendGrid v3 simulator" in result.stderr  # the banner is not a reply
    assert "31,200 credits remaining of 50,000 monthly" in out
    assert "640 credits → 1,140 credits" in out
    assert "v3 API has no start date" in out
    assert "Traceback" not in out + result.stderr


def test_console_demo_personas_ask_for_and_give_an_approval():
    """An operator's big add becomes a request; `as approver` approves it; replies on
    stdout only (the banner and log lines go to stderr)."""
    script = (
        "as operator\nadd initech 5000 ZD-1 campaign\nshow initech\n"
        "as approver\napprove 1\nas nobody\nas viewer\nadd initech 5\nlow\nas admin\nshow initech\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--demo"],
        input=script,
        capture_output=True,
        text=True,
        env=clean_env(LOG_LEVEL="INFO"),
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.startswith("You are now the operator (UDEMOOPERATOR).")
    assert "Recorded as request #1" in out
    assert "900 credits remaining" in out  # nothing applied before the approval
    assert "You are now the approver (UDEMOAPPROVER)." in out
    assert "Request #1 (add 5,000 for initech): approved and applied." in out
    assert "No such persona" in out
    assert "add needs the operator role; you have viewer." in out
    assert "5,900 credits remaining" in out  # as admin, after the approval
    # The demo sweeps once at start, so `low` (a viewer may) has stored state to read.
    assert "(!!) hooli — 0 credits, no credits left" in out
    assert "credits-bot console (demo)" in result.stderr
    assert "as approver" in result.stderr  # the banner says how to switch
    assert "Traceback" not in out + result.stderr


def test_console_log_lines_go_to_stderr_not_the_replies(tmp_path, simulator):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "console", "--as", "U0VIEWER1"],
        input="show acme-eu\n",
        capture_output=True,
        text=True,
        env=clean_env(
            SENDGRID_API_USER=DEMO_API_USER,
            SENDGRID_API_KEY=DEMO_API_KEY,
            SENDGRID_API_URL=simulator.url,
            CREDITS_VIEWERS="U0VIEWER1",
            LOG_LEVEL="INFO",
            DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}",
        ),
        timeout=60,
        check=True,
    )
    assert "command user=U0VIEWER1 verb=show" in result.stderr
    assert "INFO" not in result.stdout
    assert result.stdout.startswith("acme-eu\n")


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in children.split()]


def test_serve_runs_web_concurrency_workers_and_each_command_is_answered_once(simulator, tmp_path):
    """WEB_CONCURRENCY gunicorn workers (a burst of commands is shared between their
    GILs); they share the database, so each command is answered once."""
    secret = SERVE_SECRET
    with FakeSlack().running() as slack:
        env = serve_env(simulator, slack, tmp_path, WEB_CONCURRENCY="3")
        with serving(env) as server:
            wait_until(lambda: len(_children(server.process.pid)) == 3)
            events = server.url + "/slack/events"

            def show(i: int) -> int:
                body = slash_command_body(
                    text="show globex", user_id="U0VIEWER1", response_url=slack.response_url(str(i))
                )
                return post_signed(events, secret, body).status_code

            with ThreadPoolExecutor(max_workers=12) as pool:
                assert list(pool.map(show, range(12))) == [200] * 12
            replies = slack.state.wait_for_responses(12)
            assert sorted(r["_path"] for r in replies) == sorted(
                f"/response/{i}" for i in range(12)
            )
            time.sleep(0.5)
            assert len(slack.state.responses) == 12  # none twice


def test_serve_uses_one_worker_per_cpu_at_most_four_unless_web_concurrency_says():
    cpus = len(os.sched_getaffinity(0))
    assert serve_workers(Settings()) == max(1, min(4, cpus))
    assert serve_workers(Settings(web_concurrency=7)) == 7
    assert load_settings({"WEB_CONCURRENCY": "2"}).web_concurrency == 2
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        load_settings({"WEB_CONCURRENCY": "0"})
