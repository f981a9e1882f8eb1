"""The Bolt app: `create_app(settings)` builds it, `register_listeners` routes it.

Slack needs an answer within 3 seconds. Every listener acks first; SendGrid is
called after the ack, on Bolt's listener executor, and the reply goes back
through `respond()` (the command's `response_url`). The executor is sized so
that a burst of slow commands does not hold up the acks of the next ones.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.adapters.slack_directory import SlackUserGroups, build_web_client
from bot.commands.service import Actor, CommandService
from bot.config import Settings
from bot.domain.credits import CreditsBackend
from bot.transports.assembly import build_service
from bot.transports.slack.blocks import render_message

# Each in-flight command holds one worker from its ack until SendGrid answers
# (up to the SendGrid timeout); 64 covers a burst of 50 slow commands with room
# for the acks of new ones.
LISTENER_WORKERS = 64


def create_app(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    web_client: WebClient | None = None,
    socket_mode: bool = False,
    listener_workers: int = LISTENER_WORKERS,
) -> App:
    """Build the Bolt app and everything behind it from settings.

    HTTP mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; Socket Mode needs
    SLACK_BOT_TOKEN (and SLACK_APP_TOKEN, checked by the socket runner).
    """
    settings.require("SLACK_BOT_TOKEN")
    if not socket_mode:
        settings.require("SLACK_SIGNING_SECRET")
    assert settings.slack_bot_token is not None
    client = web_client or build_web_client(
        token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url
    )
    service = build_service(settings, backend=backend, directory=SlackUserGroups(client=client))
    signing_secret = settings.slack_signing_secret
    app = App(
        client=client,
        signing_secret=signing_secret.reveal() if signing_secret else "",
        request_verification_enabled=not socket_mode,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(
            max_workers=listener_workers, thread_name_prefix="bolt-listener"
        ),
        logger=logging.getLogger("bot.slack"),
    )
    register_listeners(app, service)
    return app


def credits_command(service: CommandService) -> Any:
    """`/credits …`: ack at once, then run the command and answer via response_url."""

    def handle_credits(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        reply = service.handle(Actor(user_id=command["user_id"]), command.get("text") or "")
        respond(response_type="ephemeral", **render_message(reply))

    return handle_credits


def register_listeners(app: App, service: CommandService) -> None:
    """Every command, action and event this app answers."""
    app.command("/credits")(credits_command(service))
