"""`GET /readyz`: 503 naming the failing part (database, SendGrid, Slack), 200 when all answer.

The SendGrid and Slack checks are cached: many probes make one call, counted in
the simulator's call log and the fake Slack's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from bot.adapters.store import create_store_engine, migrate
from bot.config import normalize_database_url
from tests import pg
from tests.fakes.slack_api import FakeSlack
from tests.scenarios.conftest import BotFactory
from tests.simulator_calls import listing_calls

PROBES = 12


def readyz(url: str) -> requests.Response:
    return requests.get(url + "/readyz", timeout=10)


def test_ready_when_database_sendgrid_and_slack_all_answer(start_bot: BotFactory):
    bot = start_bot()
    response = readyz(bot.url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "sendgrid", "slack"}


def test_an_unmigrated_database_is_named_and_ready_again_once_migrated(
    start_bot: BotFactory, tmp_path: Path
):
    database = tmp_path / "ready.sqlite3"
    bot = start_bot(DATABASE_URL=f"sqlite:///{database}")
    assert readyz(bot.url).status_code == 200
    database.unlink()  # the file is gone: the next connection finds an empty database

    response = readyz(bot.url)
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert "not migrated" in response.json()["checks"]["database"]["detail"]
    assert requests.get(bot.url + "/healthz", timeout=5).status_code == 200  # still alive

    migrate(create_store_engine(f"sqlite:///{database}"))
    assert readyz(bot.url).status_code == 200


@pytest.mark.postgres
@pytest.mark.skipif(pg.server_url() is None, reason="TEST_DATABASE_URL is not set")
def test_a_dropped_postgres_database_is_named_and_ready_again_when_it_returns(
    start_bot: BotFactory,
):
    url = pg.create_database()
    bot = start_bot(DATABASE_URL=url)
    assert readyz(bot.url).status_code == 200

    pg.drop_database(url)  # DROP DATABASE … WITH (FORCE): the app's connections are cut
    response = readyz(bot.url)
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    detail = response.json()["checks"]["database"]["detail"]
    assert detail.startswith("unreachable:"), detail
    assert "does not exist" in detail

    pg.recreate_database(url)  # back, but empty
    response = readyz(bot.url)
    assert response.status_code == 503
    assert "not migrated" in response.json()["checks"]["database"]["detail"]

    engine = create_engine(normalize_database_url(url))
    migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()
    assert readyz(bot.url).status_code == 200


def test_a_wrong_sendgrid_key_is_named_and_checked_once_for_many_probes(
    start_bot: BotFactory, api_version: str
):
    bot = start_bot(SENDGRID_API_KEY="not-the-key")
    responses = [readyz(bot.url) for _ in range(PROBES)]

    assert {r.status_code for r in responses} == {503}
    body = responses[-1].json()
    assert body["failing"] == ["sendgrid"]
    assert "SENDGRID_API_KEY" in body["checks"]["sendgrid"]["detail"]
    assert "not-the-key" not in responses[-1].text
    assert len(listing_calls(bot.simulator, api_version)) == 1


def test_a_revoked_slack_token_is_named_and_checked_once_for_many_probes(
    start_bot: BotFactory, fake_slack: FakeSlack, api_version: str
):
    bot = start_bot()  # Bolt checks the token at start-up: it was valid then
    revoked = (200, {"ok": False, "error": "invalid_auth"}, {})
    fake_slack.state.scripted["auth.test"] = [revoked] * PROBES  # revoked since
    before = len(fake_slack.state.calls_to("auth.test"))
    responses = [readyz(bot.url) for _ in range(PROBES)]

    assert {r.status_code for r in responses} == {503}
    body = responses[-1].json()
    assert body["failing"] == ["slack"]
    assert "invalid_auth" in body["checks"]["slack"]["detail"]
    assert "SLACK_BOT_TOKEN" in body["checks"]["slack"]["detail"]
    assert len(fake_slack.state.calls_to("auth.test")) - before == 1
    assert len(listing_calls(bot.simulator, api_version)) == 1


def test_sendgrid_unreachable_keeps_the_instance_ready_and_says_so(
    start_bot: BotFactory, api_version: str
):
    """Not a credential problem: pulling every instance would leave Slack unanswered."""
    bot = start_bot(SENDGRID_API_URL="http://127.0.0.1:9/")  # discard port: refused
    response = readyz(bot.url)
    assert response.status_code == 200, response.text
    assert "not confirmed" in response.json()["checks"]["sendgrid"]["detail"]
