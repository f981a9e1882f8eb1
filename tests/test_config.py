"""Settings: defaults, validation with one-line messages, secrets hidden, .env loading."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Secret, Settings, load_settings, normalize_database_url
from bot.errors import ConfigError


def test_defaults_match_the_design():
    settings = load_settings({})
    assert settings == Settings()
    assert settings.sendgrid_api_url == "https://api.sendgrid.com/apiv2/"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.sendgrid_mode == "subuser"
    assert settings.database_url == "sqlite:///credits-bot.sqlite3"
    assert settings.auto_approve_max == 0
    assert settings.approval_ttl == timedelta(hours=24)
    assert (settings.alert_below, settings.alert_percent) == (1000, 10.0)
    assert settings.alert_schedule == "*/15 * * * *"
    assert settings.sendgrid_rate_limit == 600


def test_values_are_parsed():
    settings = load_settings(
        {
            "SENDGRID_MODE": "Reseller",
            "SENDGRID_FORMAT": "xml",
            "SENDGRID_API_URL": "http://127.0.0.1:8025/apiv2",
            "CREDITS_ADMINS": "U012AB3CD, S0614TZR7",
            "CREDITS_APPROVAL_CHANNEL": "C0123456789",
            "CREDITS_AUTO_APPROVE_MAX": "1,500",
            "CREDITS_APPROVAL_TTL": "90m",
            "CREDITS_ALERT_PERCENT": "12.5%",
            "CREDITS_WATCH": "acme-eu, globex,acme-eu",
        }
    )
    assert settings.sendgrid_mode == "reseller"
    assert settings.sendgrid_format == "xml"
    assert settings.sendgrid_api_url == "http://127.0.0.1:8025/apiv2/"
    assert settings.admins == frozenset({"U012AB3CD", "S0614TZR7"})
    assert settings.auto_approve_max == 1500
    assert settings.approval_ttl == timedelta(minutes=90)
    assert settings.alert_percent == 12.5
    assert settings.watch == ("acme-eu", "globex")


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("SENDGRID_MODE", "v3", "subuser or reseller"),
        ("SENDGRID_FORMAT", "yaml", "json or xml"),
        ("SENDGRID_API_URL", "api.sendgrid.com", "http(s):// URL"),
        ("SLACK_API_URL", "ftp://x", "http(s):// URL"),
        ("CREDITS_AUTO_APPROVE_MAX", "-1", "whole number of at least 0"),
        ("CREDITS_AUTO_APPROVE_MAX", "lots", "whole number"),
        ("CREDITS_APPROVAL_TTL", "tomorrow", "duration such as 90m"),
        ("CREDITS_APPROVAL_TTL", "0h", "duration"),
        ("CREDITS_ALERT_BELOW", "1e3", "whole number"),
        ("CREDITS_ALERT_PERCENT", "150", "at most 100"),
        ("CREDITS_ALERT_PERCENT", "nan", "number"),
        ("CREDITS_ALERT_SCHEDULE", "every 15 minutes", "cron expression"),
        ("CREDITS_ALERT_CHANNEL", "#alerts", "channel ID"),
        ("CREDITS_ADMINS", "@alice", "usernames are not unique"),
        ("CREDITS_VIEWERS", "U123,bob", "Slack user IDs"),
        ("SENDGRID_RATE_LIMIT", "0", "at least 1"),
        ("PORT", "70000", "at most 65535"),
        ("DATABASE_URL", "mysql://x/y", "sqlite:///PATH or postgres"),
    ],
)
def test_a_bad_value_stops_with_one_line_naming_the_variable(name: str, value: str, expects: str):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert message.startswith(name)
    assert expects in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/credits", "postgresql+psycopg://u:p@db:5432/credits"),
        ("postgresql://u@127.0.0.1/test", "postgresql+psycopg://u@127.0.0.1/test"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_database_urls_as_platforms_hand_them_out(given: str, expected: str):
    assert normalize_database_url(given) == expected


def test_secrets_never_show_in_repr_or_str():
    settings = load_settings(
        {
            "SENDGRID_API_KEY": "sg-password-XYZ",
            "SLACK_BOT_TOKEN": "xoxb-secret-123",
            "SLACK_SIGNING_SECRET": "signing-secret-abc",
            "SLACK_APP_TOKEN": "xapp-secret-456",
        }
    )
    text = repr(settings) + str(settings)
    for secret in settings.secrets():
        assert secret not in text
    assert settings.sendgrid_api_key == Secret("sg-password-XYZ")
    assert sorted(settings.secrets()) == sorted(
        ["sg-password-XYZ", "xoxb-secret-123", "signing-secret-abc", "xapp-secret-456"]
    )


def test_require_names_the_missing_variable():
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is required"):
        load_settings({"SLACK_BOT_TOKEN": "xoxb-1"}).require(
            "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"
        )


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("CREDITS_ALERT_BELOW=50\nCREDITS_AUTO_APPROVE_MAX=10\n")
    monkeypatch.setenv("CREDITS_AUTO_APPROVE_MAX", "20")
    settings = load_settings(dotenv_path=dotenv)
    assert (settings.alert_below, settings.auto_approve_max) == (50, 20)


@pytest.mark.parametrize(
    ("env", "version", "url"),
    [
        ({}, "v2", "https://api.sendgrid.com/apiv2/"),
        (
            {"SENDGRID_API_USER": "u", "SENDGRID_API_KEY": "p"},
            "v2",
            "https://api.sendgrid.com/apiv2/",
        ),
        ({"SENDGRID_API_KEY": "SG.key"}, "v3", "https://api.sendgrid.com/"),
        (
            {"SENDGRID_API_KEY": "SG.key", "SENDGRID_API_VERSION": "v2"},
            "v2",
            "https://api.sendgrid.com/apiv2/",
        ),
        (
            {"SENDGRID_API_VERSION": "V3", "SENDGRID_API_URL": "https://api.eu.sendgrid.com"},
            "v3",
            "https://api.eu.sendgrid.com/",
        ),
    ],
)
def test_sendgrid_api_version_and_its_default_url(env: dict[str, str], version: str, url: str):
    settings = load_settings(env)
    assert (settings.sendgrid_api_version, settings.sendgrid_api_url) == (version, url)


def test_bad_api_version_is_named():
    with pytest.raises(ConfigError, match=r"^SENDGRID_API_VERSION: expected v2 or v3, got 'v4'$"):
        load_settings({"SENDGRID_API_VERSION": "v4"})


def test_the_fleet_rate_budget_settings():
    defaults = load_settings({})
    assert (defaults.sendgrid_rate_limit, defaults.sendgrid_rate_window) == (600, 60.0)
    assert defaults.sendgrid_interactive_reserve == 20.0
    scaled = load_settings(
        {
            "SENDGRID_RATE_LIMIT": "60",
            "SENDGRID_RATE_WINDOW": "6",
            "SENDGRID_INTERACTIVE_RESERVE": "25%",
        }
    )
    assert (scaled.sendgrid_rate_limit, scaled.sendgrid_rate_window) == (60, 6.0)
    assert scaled.sendgrid_interactive_reserve == 25.0
    for name, value, expects in [
        ("SENDGRID_RATE_WINDOW", "0.5", "at least 1"),
        ("SENDGRID_INTERACTIVE_RESERVE", "95", "at most 90"),
        ("SENDGRID_INTERACTIVE_RESERVE", "-1", "at least 0"),
    ]:
        with pytest.raises(ConfigError, match=expects) as caught:
            load_settings({name: value})
        assert str(caught.value).startswith(name)
