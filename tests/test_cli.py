"""The command line as a person runs it: a real subprocess, real ports."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.fakes.processes import clean_env, free_port, serving
from tests.fakes.slack_api import FakeSlack
from tests.helpers import wait_until


@pytest.fixture
def simulator_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "SLACK_"))}
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "simulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/apiv2/)", banner)
        try:
            assert match, banner
            yield process, match.group(1)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_simulator_command_answers_like_sendgrid(
    simulator_process: tuple[subprocess.Popen[str], str],
):
    _, url = simulator_process
    response = wait_until(
        lambda: requests.post(
            url + "customer.limit.json",
            data="api_user=demo&api_key=demo-key&user=acme-eu&task=retrieve",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        )
    )
    assert response.json() == [
        {"credit": "50000", "credit_remain": "31200", "last_reset": "2026-11-01"}
    ]


def test_a_malformed_setting_stops_start_up_with_one_line():
    env = {**os.environ, "CREDITS_APPROVAL_TTL": "forever"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "simulator", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "credits-bot: configuration error: CREDITS_APPROVAL_TTL: expected a duration "
        "such as 90m, 24h or 2d, got 'forever'"
    ]


# --- start-up errors: one line on stderr naming the variable or the cause -------------

SLACK_OK = {"SLACK_BOT_TOKEN": "xoxb-startup", "SLACK_SIGNING_SECRET": "startup-secret"}
SENDGRID_OK = {"SENDGRID_API_USER": "demo", "SENDGRID_API_KEY": "demo-key-startup"}


def start(
    command: list[str], env: dict[str, str], cwd: pathlib.Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *command],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        cwd=cwd,  # no stray .env
        timeout=60,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def slack_api() -> Iterator[FakeSlack]:
    with FakeSlack().running() as fake:
        yield fake


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["clock"], ["sweep"], ["console"]])
def test_missing_sendgrid_credentials_are_one_line(command, slack_api, tmp_path):
    env = {
        **SLACK_OK,
        "SLACK_API_URL": slack_api.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db",
    }

    result = start(command, env, tmp_path)

    assert_one_line(result, "configuration error: SENDGRID_API_KEY is required: a v3 API key")
    assert result.returncode == 2


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["socket"], ["clock"], ["sweep"]])
def test_a_slack_token_slack_refuses_is_named_in_one_line(command, slack_api, tmp_path):
    env = {
        **SLACK_OK,
        **SENDGRID_OK,
        "SLACK_BOT_TOKEN": "xoxb-revoked-invalid",
        "SLACK_APP_TOKEN": "xapp-startup",
        "SLACK_API_URL": slack_api.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }

    result = start(command, env, tmp_path)

    assert_one_line(result, "SLACK_BOT_TOKEN: Slack refused the token (invalid_auth)")
    assert "xoxb-revoked-invalid" not in result.stderr
    assert result.returncode == 2


def test_serve_with_slack_unreachable_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api/"
    env = {
        **SLACK_OK,
        **SENDGRID_OK,
        "SLACK_API_URL": url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/d",
    }

    result = start(["serve", "--port", "0"], env, tmp_path)

    assert_one_line(result, f"Slack could not be reached at {url}", "SLACK_API_URL")
    assert result.returncode == 1


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["clock"], ["sweep"], ["migrate"]])
def test_database_down_names_host_and_cause_without_the_password(command, slack_api, tmp_path):
    port = free_port()  # nothing listens there
    env = {
        **SLACK_OK,
        **SENDGRID_OK,
        "SLACK_API_URL": slack_api.api_url,
        "DATABASE_URL": f"postgres://credits:db-password-1@127.0.0.1:{port}/credits",
    }

    result = start(command, env, tmp_path)

    line = assert_one_line(
        result, f"database error: PostgreSQL at 127.0.0.1:{port}/credits: ", "Connection refused"
    )
    assert "db-password-1" not in result.stderr + result.stdout
    assert line.startswith("credits-bot: ")


def test_socket_with_an_app_token_slack_refuses_is_one_line(slack_api, tmp_path):
    env = {
        **SENDGRID_OK,
        "SLACK_BOT_TOKEN": "xoxb-startup",
        "SLACK_APP_TOKEN": "xapp-revoked-invalid",
        "SLACK_API_URL": slack_api.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }

    result = start(["socket"], env, tmp_path)

    assert_one_line(result, "SLACK_APP_TOKEN: Slack refused it (invalid_auth)")


def test_serve_does_not_log_the_client_and_token_warning(slack_api, simulator, tmp_path):
    log = tmp_path / "serve.log"
    env = clean_env(
        **SLACK_OK,
        SLACK_API_URL=slack_api.api_url,
        SENDGRID_API_USER="demo",
        SENDGRID_API_KEY="demo-key",
        SENDGRID_API_URL=simulator.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}",
    )
    with log.open("w") as stderr, serving(env, stderr=stderr):
        pass  # healthy: the worker has built the app
    text = log.read_text()
    assert "Booting worker" in text  # the log was captured
    assert "will be unused" not in text


# --- help and version ---------------------------------------------------------------

SUBCOMMANDS = ["serve", "socket", "clock", "sweep", "migrate", "doctor", "console", "simulator"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_describes_itself_in_help(name):
    result = subprocess.run(
        [sys.executable, "-m", "bot", name, "--help"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=True,
    )
    usage, description = result.stdout.split("\n\n")[:2]
    assert usage.startswith(f"usage: credits-bot {name}")
    assert not description.startswith(("options:", "positional arguments:")), result.stdout
    assert len(description.split()) >= 8, description


def test_top_level_help_lists_every_subcommand():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"], capture_output=True, text=True, check=True
    )
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.MULTILINE), name


def test_version():
    from bot import __version__

    result = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"credits-bot {__version__}"


def test_simulator_rate_window_scales_its_sliding_window():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENDGRID_", "SLACK_"))}
    command = [sys.executable, "-m", "bot", "simulator", "--port", "0"]
    with subprocess.Popen(
        [*command, "--rate-limit", "2", "--rate-window", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        banner = process.stdout.readline()
        try:
            assert "rate limit 2/30s" in banner
            url = re.findall(r"http://127\.0\.0\.1:\d+/apiv2/", banner)[0]
            statuses = [
                requests.post(
                    url + "customer.limit.json",
                    data="api_user=demo&api_key=demo-key&user=acme-eu&task=retrieve",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                    timeout=5,
                )
                for _ in range(3)
            ]
            assert [r.status_code for r in statuses] == [200, 200, 429]
            assert 20 < int(statuses[2].headers["Retry-After"]) <= 30  # a 30 s window
        finally:
            process.terminate()
            process.wait(timeout=10)
