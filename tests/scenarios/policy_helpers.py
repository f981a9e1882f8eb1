"""Shared steps of the money-policy scenarios: a database per backend, clicks on
ephemeral Confirm/Cancel prompts, and replies sent concurrently to several instances."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack_requests import block_actions_body, post_signed, slash_command_body
from tests.pg import create_database, server_url
from tests.scenarios.conftest import SIGNING_SECRET, BotUnderTest, Reply, wait_for_answers

CONFIRM, CANCEL = "change_confirm", "change_cancel"


def database_url(kind: str, tmp_path: Path) -> str:
    """A fresh database of `kind` (SQLite file, or PostgreSQL when TEST_DATABASE_URL is set)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'policy.sqlite3'}"
    if server_url() is None:
        pytest.skip("TEST_DATABASE_URL is not set")
    return create_database()


def click_prompt(bot: BotUnderTest, prompt: Reply, action_id: str, user: str) -> Reply:
    """Click a button of an ephemeral reply (a Confirm prompt) and wait for the answer."""
    before = len(bot.slack.state.responses)
    body = prompt_click_body(bot, prompt.message, action_id, user, f"p{before}")
    response = post_signed(bot.events_url, SIGNING_SECRET, body)
    assert response.status_code == 200, response.text
    [answer] = wait_for_answers(bot.slack, 1, after=before)[:1]
    return Reply(response.status_code, response.text, answer)


def prompt_click_body(
    bot: BotUnderTest, message: dict[str, Any], action_id: str, user: str, name: str
) -> str:
    return block_actions_body(
        user_id=user,
        posted=message,
        channel="D0EPHEMERAL",
        ts="1700000000.000100",
        action_id=action_id,
        response_url=bot.slack.response_url(name),
    )


def send_all_at_once(requests: list[tuple[str, str]]) -> list[int]:
    """POST signed bodies (url, body) from one thread each, released together."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int] = []
    lock = threading.Lock()

    def send(url: str, body: str) -> None:
        barrier.wait()
        status = post_signed(url, SIGNING_SECRET, body).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=pair) for pair in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def command_body(bot: BotUnderTest, text: str, user: str, name: str) -> str:
    return slash_command_body(text=text, user_id=user, response_url=bot.slack.response_url(name))
