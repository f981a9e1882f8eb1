"""Scenario fixtures: the real WSGI app on 127.0.0.1, the simulator, the fake Slack.

`bot` returns a `BotUnderTest`; `bot.command(text, user)` sends a signed slash
command and waits for the reply the app posts to the response_url.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.adapters.sendgrid import SendGridV2Client, SendGridV3Client
from bot.adapters.sendgrid.ratelimit import NoLimit
from bot.commands import messages
from bot.config import load_settings
from bot.simulator import DEMO_API_KEY, DEMO_API_USER, SimulatorServer
from bot.transports.slack.wsgi import build_wsgi_app
from tests.conftest import FAST_RETRY
from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.fakes.slack_requests import (
    block_actions_body,
    post_signed,
    slash_command_body,
    view_submission_body,
)
from tests.fakes.wsgi_server import serving

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token-0123456789"

USERS = {
    "none": "U0NOBODY1",
    "viewer": "U0VIEWER1",
    "operator": "U0OPERAT1",
    "approver": "U0APPROV1",
    "admin": "U0ADMIN01",
}
ONCALL_GROUP = "S0ONCALL1"
ONCALL_MEMBER = "U0ONCALL1"

APPROVAL_CHANNEL = "C0APPROVE"

ROLE_ENV = {
    "CREDITS_VIEWERS": USERS["viewer"],
    "CREDITS_OPERATORS": USERS["operator"],
    "CREDITS_APPROVERS": f"{USERS['approver']},{ONCALL_GROUP}",
    "CREDITS_ADMINS": USERS["admin"],
}


NOTICES = (messages.LOOKING_UP.split("{")[0], messages.LOOKING)


def is_notice(message: dict[str, Any]) -> bool:
    """The "Looking up USER…" a slow command posts before its answer replaces it."""
    return not message.get("blocks") and str(message.get("text", "")).startswith(NOTICES)


def wait_for_answers(
    slack: FakeSlack, count: int, timeout: float = 10.0, *, after: int = 0
) -> list[dict[str, Any]]:
    """The first `count` answers posted to response_urls from the `after`-th post on,
    "Looking up …" notices left out."""
    state = slack.state

    def answers() -> list[dict[str, Any]]:
        return [m for m in state.responses[after:] if not is_notice(m)]

    with state.condition:
        if not state.condition.wait_for(lambda: len(answers()) >= count, timeout):
            raise AssertionError(f"expected {count} answers within {timeout} s")
        return answers()


@dataclass
class Reply:
    status: int  # the HTTP answer to the slash command
    body: str
    message: dict[str, Any]  # what the app posted to response_url

    @property
    def text(self) -> str:
        """Everything a person would read: fallback text and all block texts."""
        parts = [self.message.get("text", "")]
        for block in self.message.get("blocks", []):
            for key in ("text",):
                if isinstance(block.get(key), dict):
                    parts.append(block[key]["text"])
            parts.extend(f["text"] for f in block.get("fields") or [])
            for element in block.get("elements") or []:
                text = element.get("text", "")
                parts.append(text["text"] if isinstance(text, dict) else text)  # a button's
        return "\n".join(parts)


@dataclass
class BotUnderTest:
    url: str
    slack: FakeSlack
    simulator: SimulatorServer
    _names: Iterator[int]
    api_version: str = "v2"
    signing_secret: str = SIGNING_SECRET
    settings: Any = None  # the Settings it was started with (to build a clock alongside)

    @property
    def events_url(self) -> str:
        return self.url + "/slack/events"

    def send(self, text: str, user: str, *, response_name: str | None = None) -> requests.Response:
        name = response_name or f"r{next(self._names)}"
        body = slash_command_body(
            text=text, user_id=user, response_url=self.slack.response_url(name)
        )
        return post_signed(self.events_url, self.signing_secret, body)

    def command(self, text: str, user: str = USERS["admin"]) -> Reply:
        """Send a signed `/credits text` and wait for the reply at the response_url (the
        answer: a "Looking up …" notice posted first while SendGrid is slow is skipped)."""
        before = len(self.slack.state.responses)
        response = self.send(text, user)
        assert response.status_code == 200, response.text
        count = before + 1
        while True:
            message = self.slack.state.wait_for_responses(count)[count - 1]
            if not is_notice(message):
                return Reply(response.status_code, response.text, message)
            count += 1

    def approval_posts(self) -> list[SlackCall]:
        return [
            c
            for c in self.slack.state.calls_to("chat.postMessage")
            if c.payload.get("channel") == APPROVAL_CHANNEL and c.result.get("ok")
        ]

    def click_body(
        self,
        action_id: str,
        user: str,
        *,
        post: int = -1,
        value: str | None = None,
        response_name: str | None = None,
    ) -> str:
        posted = self.approval_posts()[post]
        return block_actions_body(
            user_id=user,
            posted=posted.payload,
            channel=posted.result["channel"],
            ts=posted.result["ts"],
            action_id=action_id,
            response_url=self.slack.response_url(response_name or f"c{next(self._names)}"),
            value=value,
        )

    def click(
        self, action_id: str, user: str, *, post: int = -1, value: str | None = None
    ) -> Reply:
        """Click a button of an approval message and wait for the ephemeral answer."""
        before = len(self.slack.state.responses)
        body = self.click_body(action_id, user, post=post, value=value)
        response = post_signed(self.events_url, self.signing_secret, body)
        assert response.status_code == 200, response.text
        messages = self.slack.state.wait_for_responses(before + 1)
        return Reply(response.status_code, response.text, messages[before])

    def submit_deny(self, user: str, request_id: str, reason: str | None) -> requests.Response:
        values = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
        body = view_submission_body(
            user_id=user,
            callback_id="approval_deny_reason",
            private_metadata=request_id,
            values=values,
        )
        return post_signed(self.events_url, self.signing_secret, body)


BotFactory = Callable[..., BotUnderTest]


def backend_client(
    simulator: SimulatorServer, version: str, **options: Any
) -> SendGridV2Client | SendGridV3Client:
    """A SendGrid client of `version` for the simulator (fast retries, no limiter)."""
    common: dict[str, Any] = {"limiter": NoLimit(), "retry": FAST_RETRY, **options}
    if version == "v3":
        return SendGridV3Client(api_key=DEMO_API_KEY, base_url=simulator.base_url, **common)
    return SendGridV2Client(
        api_user=DEMO_API_USER, api_key=DEMO_API_KEY, base_url=simulator.url, **common
    )


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack().running() as slack:
        slack.state.groups[ONCALL_GROUP] = [ONCALL_MEMBER]
        yield slack


@pytest.fixture(params=["v2", "v3"])
def api_version(request: pytest.FixtureRequest) -> str:
    """Every scenario that starts the bot runs against SendGrid v2 and v3."""
    return str(request.param)


@pytest.fixture
def start_bot(
    simulator: SimulatorServer, fake_slack: FakeSlack, tmp_path: Path, api_version: str
) -> Iterator[BotFactory]:
    """Start the app with extra environment; returns a BotUnderTest."""
    stack: list[Any] = []

    def start(**env: str) -> BotUnderTest:
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": fake_slack.api_url,
                "SENDGRID_API_VERSION": api_version,
                "SENDGRID_API_USER": DEMO_API_USER,
                "SENDGRID_API_KEY": DEMO_API_KEY,
                "SENDGRID_API_URL": simulator.url_for(api_version),
                "SENDGRID_TIMEOUT": "8",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
                "CREDITS_APPROVAL_CHANNEL": APPROVAL_CHANNEL,
                **ROLE_ENV,
                **env,
            }
        )
        context = serving(build_wsgi_app(settings))
        url = context.__enter__()
        stack.append(context)
        return BotUnderTest(
            url,
            fake_slack,
            simulator,
            itertools.count(1),
            api_version,
            signing_secret=settings.slack_signing_secret.reveal()
            if settings.slack_signing_secret
            else SIGNING_SECRET,
            settings=settings,
        )

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def bot(start_bot: BotFactory) -> BotUnderTest:
    return start_bot()
