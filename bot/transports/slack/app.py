"""The Bolt app: `create_app(settings)` builds it, `register_listeners` routes it.

Slack needs an answer within 3 seconds. Every listener acks first and hands
the SendGrid work to a separate work pool; the reply goes back through
`respond()` (the command's `response_url`, valid for 30 minutes). Bolt's
listener executor therefore only ever runs acks, so a burst of slow commands —
SendGrid slow, or the client's rate limiter holding requests back — cannot
queue the acks of the next ones behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.adapters.slack_directory import SlackUserGroups, build_web_client
from bot.commands.service import Actor, CommandService
from bot.config import Settings
from bot.domain.credits import CreditsBackend
from bot.transports.assembly import build_service
from bot.transports.slack.blocks import render_message

# Listener threads only parse Slack's payload and ack; work threads wait on
# SendGrid (up to its timeout, plus the rate limiter). Sized for a burst of
# 50 commands in flight at once.
LISTENER_WORKERS = 16
WORK_WORKERS = 48

logger = logging.getLogger("bot.slack")


def create_app(
    settings: Settings,
    *,
    backend: CreditsBackend | None = None,
    web_client: WebClient | None = None,
    socket_mode: bool = False,
    listener_workers: int = LISTENER_WORKERS,
    work_workers: int = WORK_WORKERS,
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
        logger=logger,
    )
    work = ThreadPoolExecutor(max_workers=work_workers, thread_name_prefix="credits-work")
    register_listeners(app, service, work)
    return app


def after_ack(work: Executor, task: Callable[[], None], what: str) -> None:
    """Run `task` on the work pool; a failure to deliver is logged, never lost silently."""

    def run() -> None:
        try:
            task()
        except (SlackApiError, SlackRequestError, OSError):
            logger.exception("could not deliver the answer to %s", what)

    work.submit(run)


def credits_command(service: CommandService, work: Executor) -> Any:
    """`/credits …`: ack at once, then run the command and answer via response_url."""

    def handle_credits(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        actor = Actor(user_id=command["user_id"])
        text = command.get("text") or ""

        def answer() -> None:
            reply = service.handle(actor, text)
            respond(response_type="ephemeral", **render_message(reply))

        after_ack(work, answer, f"/credits from {actor.user_id}")

    return handle_credits


def register_listeners(app: App, service: CommandService, work: Executor) -> None:
    """Every command, action and event this app answers."""
    app.command("/credits")(credits_command(service, work))
