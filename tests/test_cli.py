"""The command line as a person runs it: a real subprocess, real ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

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
