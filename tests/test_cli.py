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
