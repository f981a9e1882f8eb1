"""`serve` has a thread for every command of a burst, and a database connection for
every thread that may hold one at once (issue 16)."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from bot.simulator import DEMO_API_KEY, DEMO_API_USER
from bot.transports.slack.app import LISTENER_WORKERS, WORK_WORKERS
from bot.transports.slack.wsgi import build_wsgi_app
from tests.fakes.slack_api import FakeSlack

# The burst the issue measures: 50 `/credits show` at once.
BURST = 50


def test_a_burst_of_50_commands_each_gets_a_work_thread_and_a_kept_connection(
    fake_slack: FakeSlack, tmp_path: Path
):
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-capacity",
            "SLACK_SIGNING_SECRET": "capacity-signing-secret",
            "SLACK_API_URL": fake_slack.api_url,
            "SENDGRID_API_USER": DEMO_API_USER,
            "SENDGRID_API_KEY": DEMO_API_KEY,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        }
    )
    app = build_wsgi_app(settings)
    try:
        assert app.work.threads is not None
        assert app.work.threads >= BURST
        # Kept open once opened (pool_size), not closed on return as overflow is:
        # every work thread, every listener and the housekeeping timer.
        assert app.store.engine.pool.size() >= WORK_WORKERS + LISTENER_WORKERS + 1  # type: ignore[attr-defined]
    finally:
        app.close()
