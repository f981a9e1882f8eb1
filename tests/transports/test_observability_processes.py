"""Metrics and logs of real processes: gunicorn workers adding up, JSON log lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests

from bot.adapters.store import create_store_engine, migrate
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer
from tests.fakes.processes import ServeProcess, clean_env, serving
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import post_signed, slash_command_body
from tests.helpers import wait_until
from tests.metrics_text import scrape

SECRET = "observe-signing-secret-0123"
TOKEN = "xoxb-observe-token-0123456789"
VIEWER = "U0VIEWER1"
PROCFILE_WEB = [
    sys.executable,
    "-m",
    "gunicorn",
    "--worker-class",
    "gthread",
    "--workers",
    "2",
    "--threads",
    "4",
    "--bind",
    "127.0.0.1:{port}",
    "bot.transports.slack.wsgi:application_from_environment()",
]


def bot_env(simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path, **extra: str) -> dict:
    return clean_env(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.api_url,
        SENDGRID_API_USER=DEMO_API_USER,
        SENDGRID_API_KEY=DEMO_API_KEY,
        SENDGRID_API_URL=simulator.url,
        CREDITS_VIEWERS=VIEWER,
        DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        **extra,
    )


def show(server: ServeProcess, slack: FakeSlack, name: str) -> None:
    before = len(slack.state.responses)
    body = slash_command_body(
        text="show globex", user_id=VIEWER, response_url=slack.response_url(name)
    )
    assert post_signed(server.url + "/slack/events", SECRET, body).status_code == 200
    slack.state.wait_for_responses(before + 1)


def worker_pids_with_commands(directory: Path) -> set[str]:
    """Workers that counted a command: each writes counter_<pid>.db on its first one."""
    return {path.stem.removeprefix("counter_") for path in directory.glob("counter_*.db")}


def test_metrics_add_up_across_two_gunicorn_workers(simulator, tmp_path: Path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    with FakeSlack().running() as slack:
        env = bot_env(simulator, slack, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory))
        # Migrated first: two workers migrating one new SQLite file at once can collide
        # (PostgreSQL serialises migrations with an advisory lock; SQLite has none).
        engine = create_store_engine(env["DATABASE_URL"])
        migrate(engine)
        engine.dispose()
        with serving(env, PROCFILE_WEB) as server:
            sent = 0
            # Until both workers have answered at least one command (the kernel picks).
            while len(worker_pids_with_commands(directory)) < 2:
                assert sent < 60, "one worker answered every command"
                show(server, slack, f"w{sent}")
                sent += 1
            show(server, slack, "last")
            sent += 1
            for _ in range(6):  # scrapes land on either worker: each sees every count
                metrics = scrape(server.url)
                assert metrics.value("credits_commands_total", subcommand="show") == sent
                assert metrics.value("credits_ack_seconds_count") == sent
            wait_until(lambda: scrape(server.url).value("credits_reply_seconds_count") == sent)


def test_serve_sets_up_the_metrics_directory_and_starts_from_zero(simulator, tmp_path: Path):
    directory = tmp_path / "kept"
    with FakeSlack().running() as slack:
        # Unset: serve makes a directory of its own.
        with serving(bot_env(simulator, slack, tmp_path)) as server:
            show(server, slack, "a")
            assert scrape(server.url).value("credits_commands_total") == 1
        # Set: files a previous run left there are removed at start.
        env = bot_env(simulator, slack, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory))
        with serving(env) as server:
            show(server, slack, "b")
            show(server, slack, "c")
        assert list(directory.glob("*.db"))  # the first run's files are still there
        with serving(env) as server:
            assert scrape(server.url).value("credits_commands_total") == 0
            show(server, slack, "d")
            assert scrape(server.url).value("credits_commands_total") == 1


def test_json_logs_parse_and_carry_one_request_id_from_ack_to_reply(simulator, tmp_path: Path):
    log = tmp_path / "serve.log"
    with FakeSlack().running() as slack:
        env = bot_env(simulator, slack, tmp_path, LOG_FORMAT="json", LOG_LEVEL="DEBUG")
        with serving(env, log=log) as server:
            show(server, slack, "one")
            show(server, slack, "two")
            requests.get(server.url + "/readyz", timeout=10)
            wait_until(lambda: log.read_text().count('"answered /credits') == 2)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(lines) > 10  # gunicorn's own lines included
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    acks = [x for x in lines if x["message"].startswith("answered POST /slack/events")]
    replies = [x for x in lines if x["message"].startswith("answered /credits")]
    assert len(acks) == len(replies) == 2
    assert {a["request_id"] for a in acks} == {r["request_id"] for r in replies}
    assert len({a["request_id"] for a in acks}) == 2
    commands = [x for x in lines if x["message"].startswith("command user=")]
    assert {c["request_id"] for c in commands} == {a["request_id"] for a in acks}
    for secret in (SECRET, TOKEN, DEMO_API_KEY):
        assert secret not in text
