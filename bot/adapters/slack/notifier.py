"""`ApprovalNotifier` over Slack's Web API: post a request, edit it with chat.update,
DM the requester, post reminders in its thread and decisions in the log channel.

What the messages say and look like is the Slack transport's (`ApprovalMessages`,
Block Kit); this adapter only sends them and turns Slack's failures into NotifyError.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.adapters.slack.web import failure_reason
from bot.domain.approvals import ApprovalRequest
from bot.domain.credits import Balance
from bot.errors import NotifyError


class ApprovalMessages(Protocol):
    """How approval requests are rendered for Slack (`chat.postMessage` arguments)."""

    def request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance | None,
        expected: Balance | None,
        warning: str | None = None,
    ) -> dict[str, Any]: ...

    def outcome(self, request: ApprovalRequest) -> dict[str, Any]: ...

    def requester_notice(self, request: ApprovalRequest) -> str: ...


class SlackApprovalNotifier:
    """`ApprovalNotifier` over the Web API: post, edit with chat.update, DM the requester."""

    def __init__(
        self,
        *,
        client: WebClient,
        channel_id: str,
        messages: ApprovalMessages,
        log_channel_id: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._channel_id = channel_id
        self._messages = messages
        self._log_channel_id = log_channel_id
        self._logger = logger or logging.getLogger("bot.slack.approvals")

    def post_request(
        self,
        request: ApprovalRequest,
        *,
        current: Balance,
        expected: Balance | None,
        warning: str | None = None,
    ) -> tuple[str, str]:
        message = self._messages.request(
            request, current=current, expected=expected, warning=warning
        )
        response = self._call("chat.postMessage", channel=self._channel_id, **message)
        return str(response["channel"]), str(response["ts"])

    def show_progress(self, request: ApprovalRequest) -> None:
        """1 of 2 approvals: the card shows who approved, and keeps its buttons."""
        if not request.channel_id or not request.message_ts:
            return
        message = self._messages.request(request, current=None, expected=None)
        self._call("chat.update", channel=request.channel_id, ts=request.message_ts, **message)

    def show_outcome(self, request: ApprovalRequest) -> None:
        if not request.channel_id or not request.message_ts:
            return
        self._call(
            "chat.update",
            channel=request.channel_id,
            ts=request.message_ts,
            **self._messages.outcome(request),
        )

    def tell_requester(self, request: ApprovalRequest) -> None:
        self._call(
            "chat.postMessage",
            channel=request.requester_id,
            text=self._messages.requester_notice(request),
        )

    def tell_user(self, user_id: str, text: str) -> None:
        self._call("chat.postMessage", channel=user_id, text=text)

    def log(self, text: str) -> None:
        if self._log_channel_id:
            self._call("chat.postMessage", channel=self._log_channel_id, text=text)

    def remind(self, request: ApprovalRequest, text: str) -> None:
        if request.channel_id and request.message_ts:
            self._call(
                "chat.postMessage",
                channel=request.channel_id,
                thread_ts=request.message_ts,
                text=text,
            )
        else:  # never posted (the channel failed then): post it now, on its own
            self._call("chat.postMessage", channel=self._channel_id, text=text)

    def _call(self, method: str, **arguments: Any) -> Any:
        try:
            return self._client.api_call(method, json=arguments)
        except SlackApiError as error:
            raise NotifyError(f"Slack refused {method}", reason=failure_reason(error)) from None
        except (SlackRequestError, OSError) as error:
            self._logger.warning("%s failed: %r", method, error)
            raise NotifyError(
                f"Slack could not be reached for {method}", reason="slack_unreachable"
            ) from None
