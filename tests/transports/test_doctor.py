"""`credits-bot doctor` against the SendGrid simulator and the fake Slack Web API."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml

from bot.adapters.store import SqlStore
from bot.adapters.store.sql import head_revision
from bot.config import load_settings
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer
from bot.transports.doctor import SLACK_SCOPES, run_doctor
from tests.fakes.processes import clean_env, free_port
from tests.fakes.slack_api import FakeSlack, FakeSlackState

ROOT = pathlib.Path(__file__).parents[2]
SLACK_TOKEN = "xoxb-doctor-token-0123456789"
SIGNING_SECRET = "doctor-signing-secret-0123"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    state = FakeSlackState(groups={"S0ONCALL1": ["U0ONE", "U0TWO"]})
    with FakeSlack(state).running() as fake:
        yield fake


@pytest.fixture
def database(tmp_path: pathlib.Path) -> str:
    url = f"sqlite:///{tmp_path / 'doctor.sqlite3'}"
    SqlStore.from_url(url).close()  # migrated, as `serve` leaves it
    return url


def environment(
    slack: FakeSlack, simulator: SimulatorServer, database: str, *, version: str, **extra: str
) -> dict[str, str]:
    sendgrid = (
        {"SENDGRID_API_KEY": DEMO_API_KEY, "SENDGRID_API_URL": simulator.base_url}
        if version == "v3"
        else {
            "SENDGRID_API_USER": DEMO_API_USER,
            "SENDGRID_API_KEY": DEMO_API_KEY,
            "SENDGRID_API_URL": simulator.url,
        }
    )
    return {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        **sendgrid,
        "CREDITS_ADMINS": "U0ADMIN1",
        "CREDITS_APPROVERS": "S0ONCALL1",
        "CREDITS_APPROVAL_CHANNEL": "C0APPROVALS",
        "CREDITS_ALERT_CHANNEL": "C0ALERTS",
        "DATABASE_URL": database,
        **extra,
    }


def doctor(env: dict[str, str], tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        cwd=tmp_path,  # no stray .env
        timeout=60,
        check=False,
    )


def doctor_in_process(env: dict[str, str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_doctor(load_settings(env), out=out)
    return code, out.getvalue().splitlines()


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_every_check_passes_against_the_simulator_and_a_fake_slack(
    version, slack, simulator, database, tmp_path
):
    result = doctor(environment(slack, simulator, database, version=version), tmp_path)

    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout
    assert all(line.startswith("✓ ") for line in lines), lines
    subjects = [line.split(":", 1)[0].removeprefix("✓ ") for line in lines]
    expected = [
        "settings",
        "SLACK_SIGNING_SECRET",
        "Slack token",
        "Slack scopes",
        "CREDITS_APPROVAL_CHANNEL C0APPROVALS",
        "CREDITS_ALERT_CHANNEL C0ALERTS",
        "user group S0ONCALL1 (approvers)",
        f"SendGrid {version} (SENDGRID_API_KEY)"
        if version == "v3"
        else "SendGrid v2 (SENDGRID_API_USER, SENDGRID_API_KEY)",
        *(["SendGrid key scopes"] if version == "v3" else []),
        "database",
    ]
    assert subjects == expected
    assert "2 members" in result.stdout
    assert f"migrated ({head_revision()})" in result.stdout
    assert result.stderr == ""
    for secret in (SLACK_TOKEN, SIGNING_SECRET, DEMO_API_KEY):
        assert secret not in result.stdout


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_a_wrong_sendgrid_key_is_named_and_never_printed(
    version, slack, simulator, database, tmp_path
):
    wrong = "SG.wrong-key-that-must-never-be-printed"
    env = environment(slack, simulator, database, version=version, SENDGRID_API_KEY=wrong)

    result = doctor(env, tmp_path)

    assert result.returncode == 1
    [failure] = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert failure.startswith(f"✗ SendGrid {version} (")
    assert "SENDGRID_API_KEY" in failure
    assert "refused" in failure
    assert wrong not in result.stdout + result.stderr
    assert "wrong-key" not in result.stdout + result.stderr


def test_a_key_without_the_subuser_listing_scope_fails(slack, simulator, sim_state, database):
    sim_state.key_scopes -= {"subusers.read", "subusers.credits.update"}

    code, lines = doctor_in_process(environment(slack, simulator, database, version="v3"))

    assert code == 1
    assert (
        "✗ SendGrid key scopes: missing subusers.credits.update, subusers.read; edit the key "
        "(Settings → API Keys) to grant them, or create one with them"
    ) in lines


def test_slack_problems_each_name_their_fix(simulator, database):
    state = FakeSlackState(
        groups={"S0ONCALL1": "plan_upgrade_required"},
        scopes=("commands", "chat:write", "channels:read", "groups:read", "files:write"),
        missing_channels={"C0APPROVALS"},
        outside_channels={"C0ALERTS"},
        private_channels={"C0ALERTS"},
    )
    with FakeSlack(state).running() as slack:
        code, lines = doctor_in_process(environment(slack, simulator, database, version="v3"))

    failures = [line for line in lines if line.startswith("✗")]
    assert code == 1
    assert failures == [
        "✗ Slack scopes: missing chat:write.public, usergroups:read; add them under OAuth & "
        "Permissions (manifest.yml lists them all) and reinstall the app",
        "✗ CREDITS_APPROVAL_CHANNEL C0APPROVALS: not found: if it is a private channel, invite "
        "the bot (/invite @the-bot); otherwise check the ID (channel details, at the bottom)",
        "✗ CREDITS_ALERT_CHANNEL C0ALERTS: not found: if it is a private channel, invite the bot "
        "(/invite @the-bot); otherwise check the ID (channel details, at the bottom)",
        "✗ user group S0ONCALL1 (approvers): user groups need a paid Slack plan; grant the role "
        "to user IDs (U…) instead",
    ]


def test_a_public_channel_the_bot_is_not_in_passes_only_with_chat_write_public(simulator, database):
    state = FakeSlackState(
        groups={"S0ONCALL1": []},
        outside_channels={"C0ALERTS"},
        scopes=tuple(sorted(SLACK_SCOPES - {"chat:write.public"})),
    )
    with FakeSlack(state).running() as slack:
        env = environment(slack, simulator, database, version="v3")
        _, lines = doctor_in_process(env)
        assert (
            "✗ CREDITS_ALERT_CHANNEL C0ALERTS: #channel-c0alerts: the bot is not a member; "
            "/invite it to #channel-c0alerts" in lines
        )
        state.scopes = tuple(sorted(SLACK_SCOPES))
        _, lines = doctor_in_process(env)
        assert (
            "✓ CREDITS_ALERT_CHANNEL C0ALERTS: #channel-c0alerts, public: the bot posts without "
            "being a member (chat:write.public)"
        ) in lines
        assert "✓ user group S0ONCALL1 (approvers): 0 members" in lines


def test_a_token_slack_refuses_is_named(slack, simulator, database):
    env = environment(slack, simulator, database, version="v3")
    code, lines = doctor_in_process({**env, "SLACK_BOT_TOKEN": "xoxb-revoked-invalid"})

    assert code == 1
    assert (
        "✗ Slack token: SLACK_BOT_TOKEN: Slack refused the token (invalid_auth); copy the Bot "
        "User OAuth Token (xoxb-…) from the app's OAuth & Permissions page"
    ) in lines
    assert not [line for line in lines if "CHANNEL" in line or "user group" in line]


def test_missing_settings_are_each_named(simulator, tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'absent.sqlite3'}"}

    code, lines = doctor_in_process(env)

    assert code == 1
    assert [line.split(":", 1)[0] for line in lines] == [
        "✓ settings",
        "✗ SLACK_BOT_TOKEN",
        "✗ SLACK_SIGNING_SECRET",
        "✗ roles",
        "– CREDITS_APPROVAL_CHANNEL",
        "– CREDITS_ALERT_CHANNEL",
        "✗ SendGrid",
        "✗ database",
    ]
    assert lines[-1].endswith("does not exist yet; run `credits-bot migrate`")
    assert not (tmp_path / "absent.sqlite3").exists()  # doctor changes nothing


def test_an_unmigrated_database_is_reported(slack, simulator, tmp_path):
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    SqlStore.from_url(url).close()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    engine.dispose()

    code, lines = doctor_in_process(environment(slack, simulator, url, version="v3"))

    assert code == 1
    assert lines[-1] == (
        f"✗ database: SQLite file {tmp_path / 'old.sqlite3'} is at 0003, "
        f"newest is {head_revision()}; run `credits-bot migrate` "
        "(serve and clock also do at start-up)"
    )


def test_an_unreachable_database_names_host_and_cause_without_the_password(
    slack, simulator, tmp_path
):
    port = free_port()  # nothing listens there
    url = f"postgresql://credits:pw-not-to-print@127.0.0.1:{port}/credits"

    result = doctor(environment(slack, simulator, url, version="v3"), tmp_path)

    assert result.returncode == 1
    last = result.stdout.splitlines()[-1]
    assert last.startswith(f"✗ database: PostgreSQL at 127.0.0.1:{port}/credits: ")
    assert "refused" in last.lower()
    assert "pw-not-to-print" not in result.stdout + result.stderr


def test_a_malformed_setting_is_one_failed_check(tmp_path):
    result = doctor({"CREDITS_ALERT_BELOW": "lots"}, tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "✗ settings: CREDITS_ALERT_BELOW: expected a whole number of at least 0, got 'lots'"
    ]


def test_the_scopes_doctor_wants_are_the_manifests():
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == SLACK_SCOPES


def test_socket_mode_checks_the_app_token_instead_of_the_signing_secret(slack, simulator, database):
    env = environment(slack, simulator, database, version="v3", SLACK_SIGNING_SECRET="")

    code, lines = doctor_in_process({**env, "SLACK_APP_TOKEN": "xapp-1-socket"})
    assert code == 0
    assert "✓ SLACK_APP_TOKEN: accepted for Socket Mode (`credits-bot socket`)" in lines

    code, lines = doctor_in_process({**env, "SLACK_APP_TOKEN": "xapp-1-socket-invalid"})
    assert code == 1
    assert (
        "✗ SLACK_APP_TOKEN: Slack refused it (invalid_auth); create an "
        "app-level token with connections:write (Basic Information → App-Level Tokens)"
    ) in lines
