"""Slack's Web API client as the bot builds it, and what a failed call means."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)


def build_web_client(
    *, token: str, base_url: str, timeout: int = 10, logger: logging.Logger | None = None
) -> WebClient:
    """A Web API client that retries connection errors, 429 (Retry-After) and 5xx."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        logger=logger or logging.getLogger("bot.slack.web"),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def failure_reason(error: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, `plan_upgrade_required`, …) or the status."""
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")
