"""The observability settings, read in `bot/config.py` like every other."""

from __future__ import annotations

import pytest

from bot.config import load_settings
from bot.errors import ConfigError


def test_defaults_are_text_logs_and_no_metrics_directory_or_port():
    settings = load_settings({})
    assert (settings.log_format, settings.metrics_dir, settings.metrics_port) == (
        "text",
        None,
        None,
    )


def test_values_are_read():
    settings = load_settings(
        {"LOG_FORMAT": "JSON", "PROMETHEUS_MULTIPROC_DIR": "/run/metrics", "METRICS_PORT": "9100"}
    )
    assert (settings.log_format, settings.metrics_dir, settings.metrics_port) == (
        "json",
        "/run/metrics",
        9100,
    )


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("LOG_FORMAT", "yaml", "text or json"),
        ("METRICS_PORT", "0", "at least 1 and at most 65535"),
        ("METRICS_PORT", "http", "a whole number"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str, expects: str):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: expected ")
    assert expects in message
    assert "\n" not in message
