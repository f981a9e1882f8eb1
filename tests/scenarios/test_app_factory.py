"""The app factory only wires: `build_services` and `create_app` start no thread; the
process entry point starts this instance's upkeep, and closing the app stops it."""

from __future__ import annotations

import threading
from pathlib import Path

from bot.config import load_settings
from bot.services import build_services
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer
from bot.transports.slack.app import create_app
from bot.transports.slack.wsgi import build_wsgi_app
from tests.fakes.slack_api import FakeSlack
from tests.helpers import wait_until
from tests.scenarios.conftest import APPROVAL_CHANNEL, BOT_TOKEN, ROLE_ENV, SIGNING_SECRET


def settings_for(simulator: SimulatorServer, slack: FakeSlack, tmp_path: Path):
    return load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "SENDGRID_API_USER": DEMO_API_USER,
            "SENDGRID_API_KEY": DEMO_API_KEY,
            "SENDGRID_API_URL": simulator.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            "CREDITS_APPROVAL_CHANNEL": APPROVAL_CHANNEL,
            **ROLE_ENV,
        }
    )


def started_here(before: set[threading.Thread]) -> set[str]:
    """Threads started since `before`, but for the local test servers' request
    threads (Bolt asks the fake Slack `auth.test` when the app is built)."""
    return {
        t.name
        for t in set(threading.enumerate()) - before
        if "process_request_thread" not in t.name
    }


def bot_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in ("upkeep", "housekeeping")}


def test_the_factory_starts_no_thread(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    before = set(threading.enumerate())
    services = build_services(settings_for(simulator, fake_slack, tmp_path))
    try:
        create_app(services)
        assert started_here(before) == set()
    finally:
        services.close()


def test_the_process_entry_point_starts_the_upkeep_and_close_stops_it(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path
):
    served = build_wsgi_app(settings_for(simulator, fake_slack, tmp_path))
    assert bot_threads() == {"upkeep"}
    served.close()
    wait_until(lambda: not bot_threads())
