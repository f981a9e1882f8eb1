"""The digest poster over Slack's Web API: posts a sweep's digest, page by page, one
message a second, to the alerts channel. The pages (Block Kit) are rendered by the
Slack transport and given as `render`; this adapter only sends them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.adapters.slack.web import failure_reason
from bot.errors import NotifyError

SECONDS_BETWEEN_POSTS = 1.1

Report = TypeVar("Report")


class SlackDigestPoster(Generic[Report]):
    """`AlertPoster`: `post_digest(report)` posts `render(report)`'s pages in order."""

    def __init__(
        self,
        *,
        client: WebClient,
        channel_id: str,
        render: Callable[[Report], list[dict[str, Any]]],
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._channel_id = channel_id
        self._render = render
        self._sleep = sleep
        self._logger = logger or logging.getLogger("bot.slack.alerts")

    def post_digest(self, report: Report) -> None:
        """Post every page of the digest; raises NotifyError if Slack does not take one."""
        for index, message in enumerate(self._render(report)):
            if index:
                self._sleep(SECONDS_BETWEEN_POSTS)
            try:
                self._client.chat_postMessage(channel=self._channel_id, **message)
            except SlackApiError as error:
                raise NotifyError("digest not posted", reason=failure_reason(error)) from None
            except (SlackRequestError, OSError) as error:
                self._logger.warning("digest not posted: %r", error)
                raise NotifyError("digest not posted", reason="slack_unreachable") from None
